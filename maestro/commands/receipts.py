"""``maestro receipt verify``: a receipt's signature, offline, with MC's own verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from maestro.errors import Failed
from maestro.output import OUTPUT_OPTION, Output, emit_json, handles_errors, say


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Failed(f"cannot read {file}: {exc}", code="file_unreadable") from exc
    except ValueError as exc:
        raise Failed(f"{file}: does NOT verify: not JSON: {exc}", code="malformed_envelope") from exc


def _public_keys(paths: list[Path]) -> list[Any]:
    from receipts.signing import KeyLoadError, load_public_keys

    keys = []
    for path in paths:
        try:
            keys.extend(load_public_keys(path.read_bytes(), source=str(path)))
        except OSError as exc:
            raise Failed(f"cannot read the key {path}: {exc.strerror}", code="key_unreadable") from exc
        except KeyLoadError as exc:
            raise Failed(str(exc), code="key_invalid") from exc
    return keys


def _verify(
    document: Any, keys: list[Path], *, trusted_root: Path | None, identity: str | None, issuer: str | None
) -> tuple[dict[str, Any], str]:
    """The verified statement and who signed it: an envelope, a receipt holding one, or a Sigstore bundle."""
    from receipts.signing import is_sigstore_bundle, verify_envelope_detailed

    if isinstance(document, dict) and "payload" not in document and isinstance(document.get("envelope"), dict):
        document = document["envelope"]  # a receipt as GET /api/receipts/{id} returns it
    if is_sigstore_bundle(document):
        if not (identity and issuer):
            raise typer.BadParameter("a Sigstore bundle needs --identity and --issuer (and --trusted-root)")
        from receipts.signing.sigstore import SigstorePolicy, verify_bundle

        policy = SigstorePolicy.from_files(identity=identity, issuer=issuer, trusted_root=trusted_root)
        return dict(verify_bundle(document, policy)), f"{identity} ({issuer}), keyless via Sigstore"
    if not keys:
        raise typer.BadParameter("a DSSE envelope needs --key PUB.pem", param_hint="--key")
    verified = verify_envelope_detailed(document, _public_keys(keys))
    return dict(verified.statement), f"key {verified.key_id}"


@handles_errors
def verify(
    file: Annotated[Path, typer.Argument(help="the receipt: a DSSE envelope, a receipt object or a Sigstore bundle.")],
    keys: Annotated[
        list[Path] | None, typer.Option("--key", metavar="PUB.pem", help="a PEM public key file (repeatable).")
    ] = None,
    trusted_root: Annotated[
        Path | None, typer.Option(help="Sigstore: trusted_root.json (default: sigstore-python's cached public root).")
    ] = None,
    identity: Annotated[str | None, typer.Option(help="Sigstore: the signer's identity.")] = None,
    issuer: Annotated[str | None, typer.Option(help="Sigstore: the signer's OIDC issuer.")] = None,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Verify a receipt's signature offline (no server, no database); exit 1 saying what failed."""
    from receipts.signing import SigningError, VerificationError

    document = _read_json(file)
    try:
        statement, signed_by = _verify(
            document, keys or [], trusted_root=trusted_root, identity=identity, issuer=issuer
        )
    except VerificationError as exc:
        raise Failed(f"{file}: does NOT verify ({exc.code}): {exc.message}", code=exc.code) from exc
    except SigningError as exc:
        raise Failed(str(exc), code="verification_failed") from exc
    if output == Output.json:
        emit_json({"file": str(file), "verified": True, "signed_by": signed_by, "statement": statement})
        return
    say(f"{file}: [green]verified[/green], signed by {signed_by}")
    say(f"  predicate type: {statement['predicateType']}")
    for item in statement["subject"]:
        digests = ", ".join(f"{name}:{value}" for name, value in sorted(item["digest"].items()))
        say(f"  subject: {item.get('name', '(no name)')} {digests}")
