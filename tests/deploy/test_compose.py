"""deploy/docker-compose.yml: the whole stack, checked without a Docker engine (none runs on CI).

The file is parsed as Compose would (``${VAR:?}`` and ``${VAR:-default}`` filled in), and
the environment of every MC service is put through MC's own production check, with the
signing keyring the ``keys`` service creates on first start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from mc_project.env import read_environment
from tests.deploy.conftest import DEPLOY, routed_queues

COMPOSE = DEPLOY / "docker-compose.yml"
GIVEN = {"MC_SECRET_KEY": "k" * 50, "MC_DB_PASSWORD": "db-password", "FLOWER_BASIC_AUTH": "ops:secret"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def _interpolate(text: str, given: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name, how, default = match.groups()
        if name in given:
            return given[name]
        if how == "?":
            raise KeyError(f"{name}: {default}")
        return default or ""

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), GIVEN))["services"]


def _mc_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in services.items() if spec.get("build")}


def test_the_stack_has_every_process(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "migrate", "keys", "api", "beat", "flower"} <= set(services)
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "gunicorn" in services["api"]["command"]
    assert services["beat"]["command"][3] == "beat"
    assert "deploy" not in services["beat"], "beat must run exactly once"


def test_a_worker_listens_on_every_queue_mc_routes_to(services: dict[str, dict[str, Any]]) -> None:
    listened = set()
    for spec in services.values():
        command = spec.get("command", [])
        if command[:4] == ["celery", "-A", "mc_project", "worker"]:
            listened |= set(command[command.index("-Q") + 1].split(","))
            assert spec["healthcheck"]["test"][1].startswith("celery -A mc_project inspect ping -d ")
    assert routed_queues() <= listened, f"no worker for {sorted(routed_queues() - listened)}"


def test_step_workers_stop_warm_for_longer_than_a_step_soft_limit(services: dict[str, dict[str, Any]]) -> None:
    for queue in ("small", "medium", "large"):
        grace = services[f"worker-{queue}"]["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > 3600 + read_environment().step_timeout_grace


def test_secrets_must_be_given_not_defaulted() -> None:
    for name in GIVEN:
        missing = {key: value for key, value in GIVEN.items() if key != name}
        with pytest.raises(KeyError, match=name):
            _interpolate(COMPOSE.read_text(), missing)


def test_the_environment_passes_the_production_check(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each MC service's environment, with the keyring ``keys`` makes, is production-ready."""
    keys = services["keys"]
    assert "mc_keys generate" in keys["command"][-1]
    keyring = tmp_path / "keys"
    call_command("mc_keys", "generate", "--dir", str(keyring))
    for name, spec in _mc_services(services).items():
        environment = {key: str(value) for key, value in spec["environment"].items()}
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in spec["volumes"]}
        assert mounts.get(environment["MC_KEYS_DIR"]) == "mc-keys", f"{name} does not see the signing keyring"
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MC_KEYS_DIR", str(keyring))
        problems = read_environment().production_problems()
        assert problems == [], f"{name}: {problems}"
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]


def test_without_the_keyring_production_refuses(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in services["api"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("MC_KEYS_DIR", str(tmp_path / "empty"))
    assert any("no signing key" in problem for problem in read_environment().production_problems())
