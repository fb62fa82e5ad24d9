"""``manage.py mc_receipt verify``: offline, no database, and a reason when a receipt does not verify."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from receipts.signing import KeySigner, build_statement, generate_private_key, public_key_pem, sign_statement, subject

STATEMENT = build_statement(
    subjects=[subject("workflow.json", "7" * 64), subject("out/report.csv", "8" * 64)],
    predicate_type="https://maestro.example/receipt/execution/v1",
    predicate={"execution": "e-42"},
)


@pytest.fixture(scope="module")
def signer() -> KeySigner:
    return KeySigner(generate_private_key())


@pytest.fixture
def files(tmp_path: Path, signer: KeySigner) -> dict[str, Path]:
    """A signed receipt, a copy with one payload byte changed, MC's public key and another key."""
    envelope = sign_statement(STATEMENT, signer).envelope
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b"e-42")] ^= 0x01
    paths = {
        "receipt": tmp_path / "receipt.json",
        "tampered": tmp_path / "tampered.json",
        "key": tmp_path / "public-key.pem",
        "other_key": tmp_path / "other.pem",
    }
    paths["receipt"].write_text(json.dumps(envelope, indent=2))
    paths["tampered"].write_text(json.dumps({**envelope, "payload": base64.b64encode(payload).decode()}))
    paths["key"].write_bytes(public_key_pem(signer.public_key))
    paths["other_key"].write_bytes(public_key_pem(generate_private_key().public_key()))
    return paths


def mc_receipt(*args: Any) -> str:
    out = io.StringIO()
    call_command("mc_receipt", *map(str, args), stdout=out)
    return out.getvalue()


def test_verify_prints_who_signed_and_the_subjects(files: dict[str, Path], signer: KeySigner) -> None:
    out = mc_receipt("verify", files["receipt"], "--key", files["key"])

    assert out.splitlines() == [
        f"{files['receipt']}: verified, signed by key {signer.key_id}",
        "  predicate type: https://maestro.example/receipt/execution/v1",
        f"  subject: workflow.json sha256:{'7' * 64}",
        f"  subject: out/report.csv sha256:{'8' * 64}",
    ]


def test_verify_json_prints_the_statement(files: dict[str, Path]) -> None:
    assert json.loads(mc_receipt("verify", files["receipt"], "--key", files["key"], "--json")) == STATEMENT


def test_several_keys_and_a_receipt_object(files: dict[str, Path], tmp_path: Path) -> None:
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"id": "r-1", "envelope": json.loads(files["receipt"].read_text())}))

    out = mc_receipt("verify", wrapped, "--key", files["other_key"], "--key", files["key"])

    assert ": verified, signed by key" in out


@pytest.mark.parametrize(
    ("file", "key", "message"),
    [
        ("tampered", "key", "does NOT verify (bad_signature): bad signature: signatures[0]"),
        ("receipt", "other_key", "does NOT verify (unknown_key): unknown key: signatures[0] is by key id"),
    ],
)
def test_verify_failures_say_what_failed(files: dict[str, Path], file: str, key: str, message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        mc_receipt("verify", files[file], "--key", files[key])


def test_verify_without_key_uses_mc_keyring(files: dict[str, Path], settings: Any, tmp_path: Path) -> None:
    settings.MC_KEYS_DIR = tmp_path / "empty-keyring"

    with pytest.raises(CommandError, match=r"\(no_keys\): no public keys to verify with"):
        mc_receipt("verify", files["receipt"])


def test_unreadable_inputs(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "not.json").write_text("{")

    with pytest.raises(CommandError, match=r"not\.json: does NOT verify \(malformed_envelope\): not JSON"):
        mc_receipt("verify", tmp_path / "not.json", "--key", files["key"])
    with pytest.raises(CommandError, match=r"cannot read .*missing\.json"):
        mc_receipt("verify", tmp_path / "missing.json", "--key", files["key"])
    with pytest.raises(CommandError, match=r"cannot read the key .*missing\.pem"):
        mc_receipt("verify", files["receipt"], "--key", tmp_path / "missing.pem")


# --- as a separate process, with no database or broker to reach -------------------------------------


def run_offline(*args: str, stdin: str | None = None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``manage.py mc_receipt`` with MC's database and broker pointing at closed ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mc_project.settings",
            "MC_ENV": "development",
            "MC_DATABASE_URL": "postgres://postgres@127.0.0.1:1/unreachable",
            "MC_BROKER_URL": "redis://127.0.0.1:1/0",
            "MC_RESULT_BACKEND": "redis://127.0.0.1:1/1",
            "MC_VAR_DIR": str(tmp_path / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", "mc_receipt", *args],
        cwd=django_settings.BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_offline_verify_needs_no_database(files: dict[str, Path], signer: KeySigner, tmp_path: Path) -> None:
    result = run_offline("verify", str(files["receipt"]), "--key", str(files["key"]), tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{files['receipt']}: verified, signed by key {signer.key_id}"


def test_offline_verify_of_a_tampered_receipt_exits_1_with_the_reason(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_offline("verify", str(files["tampered"]), "--key", str(files["key"]), tmp_path=tmp_path)

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"CommandError: {files['tampered']}: does NOT verify (bad_signature): bad signature" in result.stderr


def test_offline_verify_from_standard_input(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_offline(
        "verify", "-", "--key", str(files["key"]), "--json", stdin=files["receipt"].read_text(), tmp_path=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == STATEMENT
