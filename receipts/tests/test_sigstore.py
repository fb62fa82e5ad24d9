"""Keyless signing (``MC_SIGNER=sigstore``) through sigstore-python, and offline verification of its bundles.

Fulcio, Rekor and the OIDC provider lie outside this machine: ``fake_sigstore`` stands in for
them with keys and a trusted root of its own. Everything else, sigstore-python's client code
included, runs for real. Verification runs after the stand-ins have stopped.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings as django_settings

from receipts.signing import (
    PAYLOAD_TYPE,
    SignerUnavailable,
    VerificationError,
    build_statement,
    runtime,
    sign_statement,
    subject,
    verify_envelope,
)
from receipts.signing.sigstore import SigstorePolicy, SigstoreSigner, verify_bundle
from receipts.tests.fake_sigstore import ISSUER, FakeSigstore
from workflows.manifest import canonical_json

IDENTITY = "mc-signer@example.com"
STATEMENT = build_statement(
    subjects=[subject("workflow.json", "9" * 64)],
    predicate_type="https://maestro.example/receipt/publish/v1",
    predicate={"workflow": "nightly", "version": "1.2.0"},
)


@pytest.fixture
def fake() -> Iterator[FakeSigstore]:
    with FakeSigstore() as services:
        yield services


@pytest.fixture
def files(fake: FakeSigstore, tmp_path: Path) -> dict[str, Path]:
    """What an operator configures: the trust config, the trusted root, a token file."""
    paths = {name: tmp_path / name for name in ("trust_config.json", "trusted_root.json", "token")}
    paths["trust_config.json"].write_text(json.dumps(fake.trust_config()))
    paths["trusted_root.json"].write_text(json.dumps(fake.trusted_root()))
    paths["token"].write_text(fake.identity_token(IDENTITY))
    return paths


@pytest.fixture
def sigstore_settings(settings: Any, files: dict[str, Path]) -> Any:
    settings.MC_SIGNER = "sigstore"
    settings.MC_SIGSTORE_TRUST_CONFIG = files["trust_config.json"]
    settings.MC_SIGSTORE_TRUSTED_ROOT = files["trusted_root.json"]
    settings.MC_SIGSTORE_IDENTITY_TOKEN_FILE = files["token"]
    settings.MC_SIGSTORE_IDENTITY = IDENTITY
    settings.MC_SIGSTORE_ISSUER = ISSUER
    return settings


def policy(files: dict[str, Path], *, identity: str = IDENTITY, issuer: str = ISSUER) -> SigstorePolicy:
    return SigstorePolicy.from_files(identity=identity, issuer=issuer, trusted_root=files["trusted_root.json"])


def sign(files: dict[str, Path]) -> dict[str, Any]:
    signer = SigstoreSigner.from_files(trust_config=files["trust_config.json"], identity_token_file=files["token"])
    bundle = sign_statement(STATEMENT, signer).sigstore_bundle
    assert bundle is not None
    return bundle


# --- signing keyless, verifying offline -------------------------------------------------------------


def test_mc_signs_keyless_and_the_bundle_verifies_offline(fake: FakeSigstore, sigstore_settings: Any) -> None:
    signed = sign_statement(STATEMENT, runtime.get_signer())
    fake.stop()  # from here on, nothing to reach

    assert signed.signer == "sigstore"
    bundle = signed.sigstore_bundle
    assert bundle is not None
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["dsseEnvelope"] == signed.envelope
    assert signed.envelope["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(signed.envelope["payload"]) == canonical_json(STATEMENT)
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert verify_bundle(bundle, runtime.sigstore_policy()) == STATEMENT


def test_the_envelope_is_plain_dsse_that_the_key_verifier_reads(files: dict[str, Path]) -> None:
    bundle = sign(files)
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    )

    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert verify_envelope(bundle["dsseEnvelope"], [public_key]) == STATEMENT


def test_entries_accumulate_in_one_log(files: dict[str, Path], fake: FakeSigstore) -> None:
    bundles = [sign(files) for _ in range(3)]
    fake.stop()

    assert [b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["treeSize"] for b in bundles] == [
        "1",
        "2",
        "3",
    ]
    for bundle in bundles:  # each with an inclusion proof into a larger tree
        assert verify_bundle(bundle, policy(files)) == STATEMENT


def test_mc_receipt_verifies_a_bundle_offline_without_a_database(
    files: dict[str, Path], fake: FakeSigstore, tmp_path: Path
) -> None:
    (tmp_path / "receipt.sigstore.json").write_text(json.dumps(sign(files)))
    fake.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mc_project.settings",
            "MC_DATABASE_URL": "postgres://postgres@127.0.0.1:1/unreachable",
            "MC_BROKER_URL": "redis://127.0.0.1:1/0",
            "MC_VAR_DIR": str(tmp_path / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
    )

    def mc_receipt(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "manage.py", "mc_receipt", "verify", str(tmp_path / "receipt.sigstore.json")]
        return subprocess.run(
            [*command, "--trusted-root", str(files["trusted_root.json"]), "--issuer", ISSUER, *args],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    verified = mc_receipt("--identity", IDENTITY)
    assert verified.returncode == 0, verified.stderr
    assert f"verified, signed by {IDENTITY} ({ISSUER}), keyless via Sigstore" in verified.stdout
    assert "subject: workflow.json sha256:" + "9" * 64 in verified.stdout

    refused = mc_receipt("--identity", "someone-else@example.com")
    assert refused.returncode == 1
    assert "does NOT verify (sigstore): Sigstore bundle does not verify: Certificate's SANs do not match" in (
        refused.stderr
    )


# --- what verification catches ------------------------------------------------------------------------


def test_another_identity_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(VerificationError) as caught:
        verify_bundle(sign(files), policy(files, identity="intruder@example.com"))

    assert caught.value.code == "sigstore"
    assert "Certificate's SANs do not match intruder@example.com" in str(caught.value)


def test_another_issuer_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(VerificationError, match="Certificate's OIDCIssuer does not match"):
        verify_bundle(sign(files), policy(files, issuer="https://accounts.example.com"))


def test_a_changed_payload_is_refused(files: dict[str, Path]) -> None:
    bundle = sign(files)
    payload = bytearray(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload[payload.index(b"1.2.0")] ^= 0x01
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()

    with pytest.raises(VerificationError, match="Sigstore bundle does not verify: DSSE: invalid signature"):
        verify_bundle(bundle, policy(files))


def test_a_changed_log_entry_is_refused(files: dict[str, Path]) -> None:
    bundle = sign(files)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)

    with pytest.raises(VerificationError, match="invalid log entry: SET: invalid inclusion promise"):
        verify_bundle(bundle, policy(files))


def test_a_bundle_from_another_sigstore_instance_is_refused(files: dict[str, Path]) -> None:
    with FakeSigstore() as elsewhere:
        other = {name: path.with_name("other-" + path.name) for name, path in files.items()}
        other["trust_config.json"].write_text(json.dumps(elsewhere.trust_config()))
        other["token"].write_text(elsewhere.identity_token(IDENTITY))
        foreign = sign(other)

    with pytest.raises(VerificationError, match="failed to build timestamp certificate chain"):
        verify_bundle(foreign, policy(files))


def test_a_malformed_bundle(files: dict[str, Path]) -> None:
    bundle = copy.deepcopy(sign(files))
    del bundle["verificationMaterial"]

    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, policy(files))

    assert caught.value.code == "malformed_bundle"


def test_a_policy_needs_identity_and_issuer(files: dict[str, Path]) -> None:
    with pytest.raises(VerificationError, match="needs the signer's identity and OIDC issuer"):
        SigstorePolicy.from_files(identity="", issuer=ISSUER, trusted_root=files["trusted_root.json"])


# --- when signing cannot happen, the error says why ----------------------------------------------------


def test_no_token_file(files: dict[str, Path]) -> None:
    signer = SigstoreSigner.from_files(
        trust_config=files["trust_config.json"], identity_token_file=files["token"].with_name("missing")
    )

    with pytest.raises(SignerUnavailable, match=r"MC_SIGSTORE_IDENTITY_TOKEN_FILE .*missing cannot be read"):
        sign_statement(STATEMENT, signer)


def test_an_expired_token(files: dict[str, Path], fake: FakeSigstore) -> None:
    files["token"].write_text(fake.identity_token(IDENTITY, lifetime=-60))

    with pytest.raises(
        SignerUnavailable, match="Sigstore signing failed: Identity token is malformed or missing claims"
    ):
        sign(files)


def test_a_token_fulcio_does_not_trust(files: dict[str, Path], fake: FakeSigstore) -> None:
    files["token"].write_text(fake.identity_token(IDENTITY, key=ec.generate_private_key(ec.SECP256R1())))

    with pytest.raises(SignerUnavailable, match=r"Sigstore signing failed: .*401 Client Error"):
        sign(files)


def test_fulcio_unreachable(files: dict[str, Path], fake: FakeSigstore) -> None:
    fake.stop()

    with pytest.raises(SignerUnavailable, match=r"Sigstore signing failed: .*Connection refused"):
        sign(files)


def test_mc_keys_list_says_sigstore_signs(sigstore_settings: Any, tmp_path: Path) -> None:
    import io

    from django.core.management import call_command

    sigstore_settings.MC_KEYS_DIR = tmp_path / "keys"
    out = io.StringIO()
    call_command("mc_keys", "list", stdout=out)

    assert out.getvalue().splitlines()[-1] == (
        "MC signs keyless with Sigstore (MC_SIGNER=sigstore); keys here only verify"
    )
