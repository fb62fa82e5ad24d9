"""Verify a receipt offline: no database, no network (docs/receipts.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from receipts.signing import (
    KeyLoadError,
    PublicKey,
    SigningError,
    Statement,
    VerificationError,
    is_sigstore_bundle,
    load_public_keys,
    verify_envelope_detailed,
)
from receipts.signing.runtime import verification_keys


class Command(BaseCommand):
    help = (
        "verify FILE: check a receipt's signature offline, a DSSE envelope against public keys (--key)"
        " or a Sigstore bundle against a trusted root (--trusted-root, --identity, --issuer)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="verify a receipt file; exit 1 saying what failed")
        verify.add_argument("file", help="the envelope (or Sigstore bundle) as JSON; - for standard input")
        verify.add_argument(
            "--key",
            dest="keys",
            action="append",
            type=Path,
            metavar="PUB.pem",
            help="a PEM public key file (repeatable; a file may hold several). Default: MC's keyring",
        )
        verify.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json (default: MC's setting)")
        verify.add_argument("--identity", help="Sigstore: the signer's identity (default: MC_SIGSTORE_IDENTITY)")
        verify.add_argument("--issuer", help="Sigstore: the signer's OIDC issuer (default: MC_SIGSTORE_ISSUER)")
        verify.add_argument("--json", dest="as_json", action="store_true", help="print the verified statement")

    def handle(
        self,
        *args: Any,
        file: str,
        keys: list[Path] | None,
        trusted_root: Path | None,
        identity: str | None,
        issuer: str | None,
        as_json: bool,
        **_: Any,
    ) -> None:
        document = _read_json(file)
        try:
            statement, signed_by = _verify(
                document, keys=keys, trusted_root=trusted_root, identity=identity, issuer=issuer
            )
        except VerificationError as exc:
            raise CommandError(f"{file}: does NOT verify ({exc.code}): {exc.message}") from exc
        except SigningError as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(statement, indent=2))
            return
        self.stdout.write(f"{file}: verified, signed by {signed_by}")
        self.stdout.write(f"  predicate type: {statement['predicateType']}")
        for item in statement["subject"]:
            digests = ", ".join(f"{name}:{value}" for name, value in sorted(item["digest"].items()))
            self.stdout.write(f"  subject: {item.get('name', '(no name)')} {digests}")


def _verify(
    document: Any, *, keys: list[Path] | None, trusted_root: Path | None, identity: str | None, issuer: str | None
) -> tuple[Statement, str]:
    """Verify a Sigstore bundle, an envelope, or a receipt object holding an ``envelope``."""
    if isinstance(document, dict) and "payload" not in document and isinstance(document.get("envelope"), dict):
        document = document["envelope"]
    if is_sigstore_bundle(document):
        return _verify_bundle(document, trusted_root=trusted_root, identity=identity, issuer=issuer)
    verified = verify_envelope_detailed(document, _public_keys(keys))
    return verified.statement, f"key {verified.key_id}"


def _verify_bundle(
    bundle: dict[str, Any], *, trusted_root: Path | None, identity: str | None, issuer: str | None
) -> tuple[Statement, str]:
    from receipts.signing.sigstore import SigstorePolicy, verify_bundle

    policy = SigstorePolicy.from_files(
        identity=identity or settings.MC_SIGSTORE_IDENTITY,
        issuer=issuer or settings.MC_SIGSTORE_ISSUER,
        trusted_root=trusted_root or settings.MC_SIGSTORE_TRUSTED_ROOT,
        trust_config=None if trusted_root else settings.MC_SIGSTORE_TRUST_CONFIG,
    )
    return verify_bundle(bundle, policy), f"{policy.identity} ({policy.issuer}), keyless via Sigstore"


def _public_keys(paths: list[Path] | None) -> list[PublicKey]:
    if not paths:
        return verification_keys()
    keys = []
    for path in paths:
        try:
            keys.extend(load_public_keys(path.read_bytes(), source=str(path)))
        except OSError as exc:
            raise KeyLoadError(f"cannot read the key {path}: {exc.strerror}") from exc
    return keys


def _read_json(file: str) -> Any:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {file}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{file}: does NOT verify (malformed_envelope): not JSON: {exc}") from exc
