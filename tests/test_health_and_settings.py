"""Health probes with broken dependencies, and production settings refusing to start.

Each case runs MC in a fresh process with its own environment, as a deployment would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
for path in ("/healthz", "/readyz"):
    r = client.get(path)
    print(json.dumps({"path": path, "status": r.status_code, "body": r.json()}))
"""


def run_mc(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    base.update({"DJANGO_SETTINGS_MODULE": "mc_project.settings", "MC_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=base, capture_output=True, text=True, timeout=60
    )


def probe(env: dict[str, str], tmp_path: Path) -> dict[str, dict]:
    result = run_mc(PROBE, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return {row["path"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_readyz_names_an_unreachable_database(tmp_path: Path) -> None:
    rows = probe(
        {"MC_DATABASE_URL": "postgres://postgres@127.0.0.1:1/nope", "MC_BROKER_URL": "redis://127.0.0.1:6379/15"},
        tmp_path,
    )
    assert rows["/healthz"]["status"] == 200
    ready = rows["/readyz"]
    assert ready["status"] == 503
    assert ready["body"]["checks"]["database"]["ok"] is False
    assert ready["body"]["checks"]["broker"]["ok"] is True
    assert ready["body"]["error"]["code"] == "not_ready"
    assert ready["body"]["error"]["details"][0]["path"] == "/checks/database"


def test_readyz_names_an_unreachable_broker(tmp_path: Path) -> None:
    rows = probe(
        {"MC_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres", "MC_BROKER_URL": "redis://127.0.0.1:1/0"},
        tmp_path,
    )
    ready = rows["/readyz"]
    assert ready["status"] == 503
    assert ready["body"]["checks"]["database"]["ok"] is True
    assert ready["body"]["checks"]["broker"]["ok"] is False


def test_readyz_ok_on_the_embedded_default(tmp_path: Path) -> None:
    rows = probe({}, tmp_path)
    assert rows["/readyz"]["status"] == 200, rows["/readyz"]
    assert (tmp_path / "var" / "broker" / "queue").is_dir()


PRODUCTION_OK = {
    "MC_ENV": "production",
    "MC_SECRET_KEY": "x" * 50,
    "MC_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "MC_BROKER_URL": "redis://127.0.0.1:6379/15",
    "MC_ALLOWED_HOSTS": "mc.example.com",
}


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"MC_SECRET_KEY": ""}, "MC_SECRET_KEY is not set"),
        ({"MC_DEBUG": "true"}, "MC_DEBUG must be off"),
        ({"MC_DATABASE_URL": ""}, "MC_DATABASE_URL must name a real database"),
        ({"MC_DATABASE_URL": "sqlite:///tmp/x.db"}, "MC_DATABASE_URL must name a real database"),
        ({"MC_ALLOWED_HOSTS": ""}, "MC_ALLOWED_HOSTS must list"),
        ({"MC_ALLOWED_HOSTS": "*"}, "MC_ALLOWED_HOSTS must list"),
        ({"MC_BROKER_URL": ""}, "MC_BROKER_URL must name a real broker"),
        ({"MC_DEBUG": "maybe"}, "MC_DEBUG must be a boolean"),
    ],
)
def test_production_refuses_to_start(tmp_path: Path, override: dict[str, str], complaint: str) -> None:
    result = run_mc("import django; django.setup()", {**PRODUCTION_OK, **override}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert complaint in result.stderr


def test_production_starts_when_configured(tmp_path: Path) -> None:
    from receipts.signing import generate_private_key, private_key_pem

    # Production also needs a receipt signing key (receipts/tests/test_keys.py tests its absence).
    (tmp_path / "signing.pem").write_bytes(private_key_pem(generate_private_key()))
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)"
    )
    result = run_mc(code, {**PRODUCTION_OK, "MC_SIGNING_KEY": str(tmp_path / "signing.pem")}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['mc.example.com']"


def test_blank_variables_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from mc_project.env import read_environment

    for name in ("MC_DEBUG", "MC_ALLOWED_HOSTS", "MC_LOG_LEVEL", "MC_PYTHON_ALLOWED_MODULES", "MC_RETRY_JITTER"):
        monkeypatch.setenv(name, "  ")
    monkeypatch.setenv("MC_ENV", "development")
    env = read_environment()
    assert env.debug is True
    assert "localhost" in env.allowed_hosts
    assert env.log_level == "INFO"
    assert env.python_allowed_modules == ["executions.packages.samples"]
    assert env.retry_jitter == 0.25


PGBOUNCER_PROBE = """
import json, django
django.setup()
from django.db import connection
db = connection.settings_dict
connection.ensure_connection()
print(json.dumps({
    "server_side_cursors_disabled": db.get("DISABLE_SERVER_SIDE_CURSORS", False),
    "prepare_threshold": connection.connection.prepare_threshold,
    "server_side_binding": db["OPTIONS"].get("server_side_binding"),
}))
"""


@pytest.mark.parametrize(
    ("pgbouncer", "expected"),
    [
        ("", {"server_side_cursors_disabled": False, "prepare_threshold": None, "server_side_binding": None}),
        ("true", {"server_side_cursors_disabled": True, "prepare_threshold": None, "server_side_binding": False}),
    ],
)
def test_behind_pgbouncer_mc_keeps_no_state_on_a_server_connection(
    tmp_path: Path, pgbouncer: str, expected: dict[str, object]
) -> None:
    """MC_DB_PGBOUNCER: no server-side cursors and no prepared statements (transaction pooling)."""
    env = {"MC_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres", "MC_DB_PGBOUNCER": pgbouncer}
    result = run_mc(PGBOUNCER_PROBE, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
