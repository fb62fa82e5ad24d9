"""``manage.py mc_keys``: generate, rotate, list, export-public, through the command itself."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from receipts.signing import Keyring, generate_private_key, key_id, load_public_keys, private_key_pem


def mc_keys(*args: str) -> str:
    out = io.StringIO()
    call_command("mc_keys", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def keys_dir(settings: Any, tmp_path: Path) -> Path:
    """MC's own keyring directory (MC_KEYS_DIR) for this test, empty, with the key signer."""
    settings.MC_KEYS_DIR = tmp_path / "keys"
    settings.MC_SIGNING_KEY = None
    settings.MC_SIGNING_KEY_PASSWORD = ""
    settings.MC_SIGNER = "key"
    return tmp_path / "keys"


def test_generate(keys_dir: Path) -> None:
    out = mc_keys("generate")

    record = Keyring(keys_dir).active()
    assert record is not None
    assert out.splitlines() == [
        f"generated key {record.key_id} in {keys_dir}: active",
        f"  private key {keys_dir / (record.key_id + '.key.pem')} (mode 0600, not encrypted)",
        f"  public key  {keys_dir / (record.key_id + '.pub.pem')}",
    ]


def test_generate_twice_is_an_error(keys_dir: Path) -> None:
    mc_keys("generate")

    with pytest.raises(CommandError, match=r"already has an active key [0-9a-f]{64}; rotate it"):
        mc_keys("generate")


def test_generate_with_a_password_from_the_environment(keys_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PASSWORD", "from the environment")

    assert "(mode 0600, encrypted)" in mc_keys("generate", "--password-env", "KEY_PASSWORD")
    assert Keyring(keys_dir).signer("from the environment")


def test_a_password_variable_that_is_not_set_is_an_error(keys_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="--password-env NO_SUCH_PASSWORD: that environment variable is not set"):
        mc_keys("generate", "--password-env", "NO_SUCH_PASSWORD")
    assert not Keyring(keys_dir).exists()


def test_rotate_and_list(keys_dir: Path) -> None:
    mc_keys("generate")
    old = Keyring(keys_dir).active()
    out = mc_keys("rotate")
    new = Keyring(keys_dir).active()
    assert old is not None and new is not None

    assert out.splitlines()[0] == f"new active key {new.key_id} in {keys_dir}"
    assert out.splitlines()[-1] == (
        f"retired key {old.key_id}: private key deleted, public key kept to verify its receipts"
    )
    listing = mc_keys("list").splitlines()
    assert listing[0].split() == ["KEY", "ID", "STATUS", "SOURCE", "CREATED", "RETIRED"]
    assert listing[1].split()[:3] == [old.key_id, "retired", "keyring"]
    assert listing[2].split()[:3] == [new.key_id, "active", "keyring"]
    assert listing[2].split()[-1] == "-"
    assert listing[3] == f"MC signs with key {new.key_id} from the keyring"


def test_list_as_json(keys_dir: Path) -> None:
    mc_keys("generate")

    rows = json.loads(mc_keys("list", "--json"))

    assert [row["key_id"] for row in rows] == [record.key_id for record in Keyring(keys_dir).records()]
    assert set(rows[0]) == {"key_id", "algorithm", "source", "encrypted", "created_at", "retired_at"}


def test_list_before_the_first_key(keys_dir: Path) -> None:
    assert mc_keys("list").splitlines() == [
        f"no keys in {keys_dir}",
        f"no key yet: MC generates one in {keys_dir} when it first signs",
    ]


def test_list_fails_when_mc_cannot_sign(keys_dir: Path, settings: Any) -> None:
    mc_keys("generate", "--password-env", "PATH")  # any set variable will do as a password
    settings.MC_SIGNING_KEY_PASSWORD = "not the password"

    with pytest.raises(CommandError, match=r"MC cannot sign: .* cannot be loaded: wrong password"):
        mc_keys("list")


def test_list_in_production_without_a_key_fails(keys_dir: Path, settings: Any) -> None:
    settings.MC_ENV = "production"

    with pytest.raises(CommandError, match=f"no active key in {keys_dir}: production refuses to start"):
        mc_keys("list")


def test_export_public(keys_dir: Path, tmp_path: Path) -> None:
    mc_keys("generate")
    old = Keyring(keys_dir).active()
    mc_keys("rotate")
    new = Keyring(keys_dir).active()
    assert old is not None and new is not None

    assert [key_id(k) for k in load_public_keys(mc_keys("export-public").encode())] == [new.key_id]
    assert [key_id(k) for k in load_public_keys(mc_keys("export-public", old.key_id[:10]).encode())] == [old.key_id]
    out = mc_keys("export-public", "--all", "--out", str(tmp_path / "all.pem"))
    assert out.strip() == f"wrote the public keys {old.key_id}, {new.key_id} to {tmp_path / 'all.pem'}"
    assert [key_id(k) for k in load_public_keys((tmp_path / "all.pem").read_bytes())] == [old.key_id, new.key_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export-public", "ffffffffff"], "no key id starts with 'ffffffffff'"),
        (["export-public", "--all", "abc"], "give a key id or --all, not both"),
        (["export-public", "--out", "/nonexistent/dir/key.pem"], "cannot write /nonexistent/dir/key.pem"),
    ],
)
def test_export_public_errors(keys_dir: Path, args: list[str], message: str) -> None:
    mc_keys("generate")

    with pytest.raises(CommandError, match=message):
        mc_keys(*args)


def test_export_public_without_keys(keys_dir: Path) -> None:
    with pytest.raises(CommandError, match=f"no active key in {keys_dir}"):
        mc_keys("export-public")


def test_another_directory(keys_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    mc_keys("generate", "--dir", str(other))

    assert Keyring(other).active() is not None
    assert not Keyring(keys_dir).exists()
    assert mc_keys("list", "--dir", str(other)).splitlines()[1].split()[1] == "active"


def test_with_mc_signing_key_the_keyring_is_not_rotated(keys_dir: Path, settings: Any, tmp_path: Path) -> None:
    key = generate_private_key()
    (tmp_path / "signing.pem").write_bytes(private_key_pem(key))
    settings.MC_SIGNING_KEY = tmp_path / "signing.pem"

    for action in ("generate", "rotate"):
        with pytest.raises(CommandError, match=f"MC signs with MC_SIGNING_KEY {tmp_path / 'signing.pem'}, not with"):
            mc_keys(action)
    assert [key_id(k) for k in load_public_keys(mc_keys("export-public").encode())] == [key_id(key.public_key())]
    assert mc_keys("list").splitlines()[-1] == (
        f"MC signs with key {key_id(key.public_key())} from MC_SIGNING_KEY {tmp_path / 'signing.pem'}"
    )


def test_production_first_key_then_start(tmp_path: Path) -> None:
    """The command that makes production's key runs where production refuses to start for want of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mc_project.settings",
            "MC_ENV": "production",
            "MC_SECRET_KEY": "x" * 50,
            "MC_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none",
            "MC_BROKER_URL": "redis://127.0.0.1:1/0",
            "MC_ALLOWED_HOSTS": "mc.example.com",
            "MC_VAR_DIR": str(tmp_path / "var"),
            "MC_KEYS_DIR": str(tmp_path / "keys"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
        )

    refused = run("manage.py", "check")
    assert refused.returncode != 0 and "no signing key" in refused.stderr

    listing = run("manage.py", "mc_keys", "list")
    assert listing.returncode == 1
    assert f"no active key in {tmp_path / 'keys'}: production refuses to start" in listing.stderr

    generated = run("manage.py", "mc_keys", "generate")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("generated key ")

    started = run("-c", "import django; django.setup(); print('started')")
    assert started.returncode == 0, started.stderr
