"""Receipts verify with plain openssl, without MC: the shell steps of docs/receipts.md, run as written.

Also: the key files MC writes are the standard formats openssl reads, and keys openssl makes
work in MC.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from receipts.signing import (
    KeySigner,
    build_statement,
    generate_private_key,
    key_id,
    load_private_key,
    private_key_pem,
    public_key_pem,
    runtime,
    sign_statement,
    subject,
    verify_envelope,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "receipts.md"
STATEMENT = build_statement(
    subjects=[subject("workflow.json", "5" * 64)],
    predicate_type="https://maestro.example/receipt/execution/v1",
    # Non-ASCII, quotes and slashes: the payload is base64, so the shell never sees them.
    predicate={"note": 'café "quoted" / slash', "steps": [{"id": "fetch", "status": "succeeded"}]},
)


def documented_steps() -> str:
    """The shell block between the openssl-verify markers of docs/receipts.md."""
    text = DOCS.read_text()
    block = re.search(r"<!-- openssl-verify:begin -->\s*```sh\n(.*?)```\s*<!-- openssl-verify:end -->", text, re.S)
    assert block, "docs/receipts.md lost its openssl-verify block"
    return block.group(1)


def run_steps(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", documented_steps()], cwd=directory, capture_output=True, text=True, timeout=60)


@pytest.fixture
def signer() -> KeySigner:
    return KeySigner(generate_private_key())


def write_receipt(directory: Path, envelope: dict[str, Any], signer: KeySigner, *, indent: int | None) -> None:
    (directory / "envelope.json").write_text(json.dumps(envelope, indent=indent))
    (directory / "public-key.pem").write_bytes(public_key_pem(signer.public_key))


@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "pretty"])
def test_the_documented_openssl_steps_verify_a_receipt_mc_signed(
    tmp_path: Path, settings: Any, indent: int | None
) -> None:
    settings.MC_KEYS_DIR = tmp_path / "keys"
    settings.MC_SIGNING_KEY = None
    settings.MC_SIGNER = "key"
    envelope = sign_statement(STATEMENT, runtime.get_signer()).envelope
    (tmp_path / "envelope.json").write_text(json.dumps(envelope, indent=indent))
    call_command("mc_keys", "export-public", "--out", str(tmp_path / "public-key.pem"), stdout=io.StringIO())

    result = run_steps(tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Verified OK"
    assert json.loads((tmp_path / "payload.json").read_bytes()) == STATEMENT


def test_the_documented_openssl_steps_refuse_a_payload_with_one_byte_changed(tmp_path: Path, signer: KeySigner) -> None:
    envelope = sign_statement(STATEMENT, signer).envelope
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b"succeeded")] ^= 0x20  # "succeeded" -> "Succeeded"
    write_receipt(tmp_path, {**envelope, "payload": base64.b64encode(payload).decode()}, signer, indent=2)

    result = run_steps(tmp_path)

    assert result.returncode == 1
    assert result.stdout.strip() == "Verification failure"


def test_the_documented_openssl_steps_refuse_another_key(tmp_path: Path, signer: KeySigner) -> None:
    envelope = sign_statement(STATEMENT, signer).envelope
    write_receipt(tmp_path, envelope, KeySigner(generate_private_key()), indent=2)

    result = run_steps(tmp_path)

    assert result.returncode == 1
    assert result.stdout.strip() == "Verification failure"


def test_the_documented_key_id_command(tmp_path: Path, signer: KeySigner) -> None:
    command = next(line for line in DOCS.read_text().splitlines() if line.startswith("openssl pkey -pubin"))
    (tmp_path / "public-key.pem").write_bytes(public_key_pem(signer.public_key))

    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == signer.key_id


def test_openssl_reads_an_encrypted_key_mc_wrote(tmp_path: Path, signer: KeySigner) -> None:
    private = generate_private_key()
    (tmp_path / "key.pem").write_bytes(private_key_pem(private, "pass phrase"))

    result = subprocess.run(
        ["openssl", "pkey", "-in", "key.pem", "-passin", "env:KEY_PASS", "-pubout"],
        cwd=tmp_path,
        env={"KEY_PASS": "pass phrase", "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == public_key_pem(private.public_key())


def test_a_key_openssl_generated_signs_in_mc(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        ["openssl", "pkey", "-in", "key.pem", "-pubout", "-out", "public-key.pem"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    signer = KeySigner(load_private_key((tmp_path / "key.pem").read_bytes()))
    envelope = sign_statement(STATEMENT, signer).envelope
    (tmp_path / "envelope.json").write_text(json.dumps(envelope))

    assert run_steps(tmp_path).returncode == 0
    assert verify_envelope(envelope, [signer.public_key]) == STATEMENT
    assert key_id(signer.public_key) == envelope["signatures"][0]["keyid"]
