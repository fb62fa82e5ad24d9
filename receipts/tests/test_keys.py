"""Signing keys: PEM formats, passwords, the keyring on disk (rotation, permissions, concurrent
first use), the signer MC's settings choose, and production refusing to start without a key."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

from mc_project.env import KEYRING_INDEX
from receipts.signing import (
    KeyLoadError,
    Keyring,
    KeyringError,
    KeySigner,
    build_statement,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    load_public_keys,
    private_key_pem,
    public_key_pem,
    runtime,
    sign_statement,
    subject,
    verify_envelope,
)
from receipts.signing.keyring import INDEX_NAME

STATEMENT = build_statement(
    subjects=[subject("workflow.json", "1" * 64)], predicate_type="https://maestro.example/p", predicate={"n": 1}
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- PEM formats and passwords ---------------------------------------------------------------


def test_private_key_round_trip_is_pkcs8() -> None:
    key = generate_private_key()
    pem = private_key_pem(key)

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert key_id(load_private_key(pem).public_key()) == key_id(key.public_key())


def test_password_protected_key() -> None:
    key = generate_private_key()
    pem = private_key_pem(key, "correct horse")

    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert key_id(load_private_key(pem, "correct horse").public_key()) == key_id(key.public_key())
    needs_password = r"^key\.pem is encrypted: a password is needed \(MC_SIGNING_KEY_PASSWORD\)$"
    with pytest.raises(KeyLoadError, match=needs_password):
        load_private_key(pem, None, source="key.pem")
    with pytest.raises(KeyLoadError, match=r"^key\.pem cannot be loaded: wrong password$"):
        load_private_key(pem, "wrong horse", source="key.pem")


def test_a_password_is_ignored_for_an_unencrypted_key() -> None:
    key = generate_private_key()

    assert key_id(load_private_key(private_key_pem(key), "unused").public_key()) == key_id(key.public_key())


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "is not a PKCS#8 PEM private key (no PEM block found)"),
        (b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", "found 'EC PRIVATE KEY'"),
        (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "found 'ENCRYPTED SIGSTORE PRIVATE KEY'"),
        (
            ec.generate_private_key(ec.SECP384R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "is on curve secp384r1, not P-256 (secp256r1)",
        ),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "is not an ECDSA key (got RSAPrivateKey",
        ),
    ],
)
def test_unusable_private_keys_say_why(pem: bytes, message: str) -> None:
    with pytest.raises(KeyLoadError) as caught:
        load_private_key(pem, source="key.pem")

    assert str(caught.value).startswith("key.pem ")
    assert message in str(caught.value)


def test_public_key_pem_is_subject_public_key_info() -> None:
    key = generate_private_key().public_key()
    pem = public_key_pem(key)

    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert key_id(load_public_key(pem)) == key_id(key)


def test_several_public_keys_in_one_file() -> None:
    keys = [generate_private_key().public_key() for _ in range(3)]
    pem = b"# MC receipt keys\n" + b"".join(public_key_pem(key) for key in keys)

    assert [key_id(key) for key in load_public_keys(pem)] == [key_id(key) for key in keys]
    with pytest.raises(KeyLoadError, match=r"holds no PEM public key \(found 'PRIVATE KEY'\)"):
        load_public_keys(private_key_pem(generate_private_key()))


# --- the keyring ------------------------------------------------------------------------------------


def test_generate_writes_the_keyring_with_safe_permissions(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    record = ring.generate()

    private, public = ring.private_key_path(record.key_id), ring.public_key_path(record.key_id)
    assert mode(ring.directory) == 0o700
    assert mode(private) == 0o600
    assert mode(public) == 0o644
    assert key_id(load_private_key(private.read_bytes()).public_key()) == record.key_id
    assert key_id(load_public_key(public.read_bytes())) == record.key_id
    index = json.loads((ring.directory / "keyring.json").read_text())
    assert index["format"] == "mc.keyring/v1"
    assert index["keys"] == [
        {
            "key_id": record.key_id,
            "algorithm": "ecdsa-p256-sha256",
            "source": "keyring",
            "encrypted": False,
            "created_at": record.created_at.isoformat(),
            "retired_at": None,
        }
    ]
    assert record.created_at.tzinfo is not None


def test_private_keys_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        record = Keyring(tmp_path).generate()
    finally:
        os.umask(previous)

    assert mode(Keyring(tmp_path).private_key_path(record.key_id)) == 0o600


def test_generate_twice_is_refused(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    first = ring.generate()

    with pytest.raises(KeyringError, match=f"already has an active key {first.key_id}; rotate it"):
        ring.generate()


def test_rotation_keeps_old_receipts_verifiable_and_only_the_new_key_signs(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    old = ring.generate()
    old_receipt = sign_statement(STATEMENT, ring.signer()).envelope

    new, retired = ring.rotate()

    assert retired is not None and retired.key_id == old.key_id and retired.retired_at == new.created_at
    assert [(r.key_id, r.status) for r in ring.records()] == [(old.key_id, "retired"), (new.key_id, "active")]
    assert not ring.private_key_path(old.key_id).exists()  # the retired key can never sign again
    assert ring.public_key_path(old.key_id).exists()
    new_receipt = sign_statement(STATEMENT, ring.signer()).envelope
    assert new_receipt["signatures"][0]["keyid"] == new.key_id
    for envelope in (old_receipt, new_receipt):
        assert verify_envelope(envelope, ring.public_keys()) == STATEMENT
    # The old public key alone still verifies the old receipt.
    assert verify_envelope(old_receipt, [ring.public_key(old.key_id)]) == STATEMENT


def test_rotate_an_empty_keyring_makes_its_first_key(tmp_path: Path) -> None:
    new, retired = Keyring(tmp_path).rotate()

    assert retired is None and Keyring(tmp_path).active() == new


def test_password_protected_keyring(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    record = ring.generate(password="s3cret")

    assert record.encrypted
    assert ring.private_key_path(record.key_id).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert ring.signer("s3cret").key_id == record.key_id
    with pytest.raises(KeyLoadError, match="is encrypted: a password is needed"):
        ring.signer()
    with pytest.raises(KeyLoadError, match="wrong password"):
        ring.signer("guess")


def test_ensure_key_creates_once(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "new")
    first = ring.ensure_key()

    assert ring.ensure_key() == first
    assert len(ring.records()) == 1


def _ensure_key(directory: str) -> str:
    return Keyring(directory).ensure_key().key_id


def test_processes_signing_at_once_on_first_use_agree_on_one_key(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        key_ids = pool.map(_ensure_key, [str(tmp_path / "keys")] * 12)

    records = Keyring(tmp_path / "keys").records()
    assert len(records) == 1
    assert set(key_ids) == {records[0].key_id}
    assert sorted(p.name for p in (tmp_path / "keys").iterdir() if not p.name.startswith(".")) == sorted(
        [f"{records[0].key_id}.key.pem", f"{records[0].key_id}.pub.pem", "keyring.json"]
    )


def test_adopting_an_external_key(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    own = ring.generate()
    external = generate_private_key()

    adopted = ring.adopt(external.public_key())

    assert adopted.source == "MC_SIGNING_KEY" and adopted.active
    assert ring.adopt(external.public_key()) == adopted  # idempotent
    assert [(r.key_id, r.status) for r in ring.records()] == [(own.key_id, "retired"), (adopted.key_id, "active")]
    assert not ring.private_key_path(own.key_id).exists()
    assert not ring.private_key_path(adopted.key_id).exists()  # never copied in
    with pytest.raises(KeyringError, match="comes from MC_SIGNING_KEY: its private key is not in the keyring"):
        ring.signer()
    # Replacing the external key retires the first one, whose receipts still verify.
    receipt = sign_statement(STATEMENT, KeySigner(external)).envelope
    ring.adopt(generate_private_key().public_key())
    assert [r.status for r in ring.records()] == ["retired", "retired", "active"]
    assert verify_envelope(receipt, ring.public_keys()) == STATEMENT


def test_a_corrupt_index_says_so(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    ring.generate()
    ring.index_path.write_text("{not json")

    with pytest.raises(KeyringError, match=f"keyring index {ring.index_path} cannot be read: Expecting"):
        ring.records()


def test_a_private_key_file_that_does_not_match_its_id_is_refused(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    record = ring.generate()
    path = ring.private_key_path(record.key_id)
    path.chmod(0o600)
    path.write_bytes(private_key_pem(generate_private_key()))

    with pytest.raises(KeyringError, match=f"holds key [0-9a-f]{{64}}, not the active key {record.key_id}"):
        ring.signer()


def test_settings_and_keyring_agree_on_the_index_name() -> None:
    assert KEYRING_INDEX == INDEX_NAME


# --- the signer MC's settings choose --------------------------------------------------------------


def test_embedded_default_generates_a_key_on_first_use(settings: Any, tmp_path: Path) -> None:
    settings.MC_KEYS_DIR = tmp_path / "keys"
    settings.MC_SIGNING_KEY = None

    signer = runtime.get_signer()

    assert isinstance(signer, KeySigner)
    active = Keyring(tmp_path / "keys").active()
    assert active is not None and active.key_id == signer.key_id
    assert runtime.key_signer().key_id == signer.key_id
    assert [key_id(k) for k in runtime.verification_keys()] == [signer.key_id]


def test_production_does_not_generate_keys(settings: Any, tmp_path: Path) -> None:
    settings.MC_KEYS_DIR = tmp_path / "keys"
    settings.MC_SIGNING_KEY = None
    settings.MC_ENV = "production"

    with pytest.raises(KeyringError, match="has no active key"):
        runtime.get_signer()
    assert not (tmp_path / "keys" / "keyring.json").exists()


def test_mc_signing_key_signs_and_is_adopted(settings: Any, tmp_path: Path) -> None:
    key = generate_private_key()
    (tmp_path / "signing.pem").write_bytes(private_key_pem(key, "pw"))
    settings.MC_KEYS_DIR = tmp_path / "keys"
    settings.MC_SIGNING_KEY = tmp_path / "signing.pem"
    settings.MC_SIGNING_KEY_PASSWORD = "pw"

    signer = runtime.get_signer()

    assert isinstance(signer, KeySigner) and signer.key_id == key_id(key.public_key())
    active = Keyring(tmp_path / "keys").active()
    assert active is not None and active.source == "MC_SIGNING_KEY" and active.key_id == signer.key_id
    settings.MC_SIGNING_KEY_PASSWORD = ""
    with pytest.raises(KeyLoadError, match=r"MC_SIGNING_KEY .*signing\.pem is encrypted"):
        runtime.get_signer()


def test_mc_signing_key_verifies_where_no_process_signed_yet(settings: Any, tmp_path: Path) -> None:
    """An API pod's own keyring directory is empty until it signs: the key it was given still verifies."""
    key = generate_private_key()
    (tmp_path / "signing.pem").write_bytes(private_key_pem(key))
    settings.MC_SIGNING_KEY = tmp_path / "signing.pem"
    settings.MC_KEYS_DIR = tmp_path / "signer-keys"
    signer = runtime.get_signer()
    settings.MC_KEYS_DIR = tmp_path / "verifier-keys"  # another pod: nothing adopted there

    assert [key_id(k) for k in runtime.verification_keys()] == [signer.key_id]
    assert not (tmp_path / "verifier-keys" / "keyring.json").exists()


# --- production refuses to start without a key -------------------------------------------------------

PRODUCTION_OK = {
    "MC_ENV": "production",
    "MC_SECRET_KEY": "x" * 50,
    "MC_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none",
    "MC_BROKER_URL": "redis://127.0.0.1:1/0",
    "MC_ALLOWED_HOSTS": "mc.example.com",
}


def start_mc(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Load MC's settings in a fresh process, as a server or worker does when it starts."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    base.update(
        {
            "DJANGO_SETTINGS_MODULE": "mc_project.settings",
            "MC_VAR_DIR": str(tmp_path / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=settings.BASE_DIR,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_a_signing_key(tmp_path: Path) -> None:
    result = start_mc(PRODUCTION_OK, tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured: MC_ENV=production refuses to start" in result.stderr
    assert f"no signing key: set MC_SIGNING_KEY to a PEM private key, or create a keyring in {tmp_path}" in (
        result.stderr
    )


def test_production_starts_with_a_keyring(tmp_path: Path) -> None:
    Keyring(tmp_path / "var" / "keys").generate()

    result = start_mc(PRODUCTION_OK, tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_production_starts_with_mc_signing_key(tmp_path: Path) -> None:
    (tmp_path / "signing.pem").write_bytes(private_key_pem(generate_private_key()))

    result = start_mc({**PRODUCTION_OK, "MC_SIGNING_KEY": str(tmp_path / "signing.pem")}, tmp_path)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"MC_SIGNING_KEY": "/nonexistent/key.pem"}, "MC_SIGNING_KEY /nonexistent/key.pem cannot be read"),
        ({"MC_SIGNING_KEY": "{encrypted}"}, "is encrypted: set MC_SIGNING_KEY_PASSWORD"),
        ({"MC_SIGNING_KEY": "{public}"}, "is not a PEM private key (PKCS#8)"),
        ({"MC_SIGNING_KEY": "{sec1}"}, "is not a PEM private key (PKCS#8)"),
        ({"MC_SIGNER": "hsm"}, "MC_SIGNER must be one of key, sigstore, got 'hsm'"),
    ],
)
def test_unusable_signing_settings_refuse_to_start_in_every_mode(
    tmp_path: Path, env: dict[str, str], complaint: str
) -> None:
    key = generate_private_key()
    (tmp_path / "encrypted.pem").write_bytes(private_key_pem(key, "pw"))
    (tmp_path / "public.pem").write_bytes(public_key_pem(key.public_key()))
    # The SEC1 form ("EC PRIVATE KEY") of the same key: MC loads PKCS#8 only.
    (tmp_path / "sec1.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    paths = {name: str(tmp_path / f"{name[1:-1]}.pem") for name in ("{encrypted}", "{public}", "{sec1}")}
    env = {name: paths.get(value, value) for name, value in env.items()}

    result = start_mc({"MC_ENV": "development", **env}, tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert complaint in result.stderr


def test_production_sigstore_needs_the_identity_to_verify(tmp_path: Path) -> None:
    result = start_mc({**PRODUCTION_OK, "MC_SIGNER": "sigstore"}, tmp_path)

    assert result.returncode != 0
    assert "MC_SIGNER=sigstore needs MC_SIGSTORE_IDENTITY and MC_SIGSTORE_ISSUER" in result.stderr
