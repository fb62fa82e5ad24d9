"""``maestro receipt verify``: a receipt's signature, offline, with MC's own verifier."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from maestro.client import Api, api_session, path_segment
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
    file: Annotated[
        Path | None,
        typer.Argument(help="the receipt: a DSSE envelope, a receipt object or a Sigstore bundle."),
    ] = None,
    execution: Annotated[
        str | None,
        typer.Option(
            "--execution", "-e", metavar="EXECUTION", help="fetch the run's receipt (and, without --key, its key)."
        ),
    ] = None,
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
    """Verify a receipt's signature offline (no server, no database); exit 1 saying what failed.

    With --execution ID the receipt is fetched first, then verified here; without --key
    against the key the server names (say so: pin a key you got another way with --key).
    """
    if (file is None) == (execution is None):
        raise typer.BadParameter("give a receipt FILE or --execution ID (one of them)")
    fetched_key = False
    with tempfile.TemporaryDirectory(prefix="maestro-receipt-") as scratch:
        if execution is not None:
            with api_session() as api:
                document, pem, name = _fetch(api, execution)
            if not keys:
                fetched_key = True
                keys = [Path(scratch) / f"{name}.pub.pem"]
                keys[0].write_bytes(pem)
            label = f"the receipt of {name}"
        else:
            assert file is not None
            document, label = _read_json(file), str(file)
        statement, signed_by = _verified(document, label, keys or [], trusted_root, identity, issuer)
    if output == Output.json:
        emit_json({"file": label, "verified": True, "signed_by": signed_by, "statement": statement})
        return
    say(f"{label}: [green]verified[/green], signed by {signed_by}")
    if fetched_key:
        say("  [dim](with the key the server sent; pin one with --key PUB.pem)[/dim]")
    say(f"  predicate type: {statement['predicateType']}")
    for item in statement["subject"]:
        digests = ", ".join(f"{name}:{value}" for name, value in sorted(item["digest"].items()))
        say(f"  subject: {item.get('name', '(no name)')} {digests}")


def _verified(
    document: Any,
    label: str,
    keys: list[Path],
    trusted_root: Path | None,
    identity: str | None,
    issuer: str | None,
) -> tuple[dict[str, Any], str]:
    from receipts.signing import SigningError, VerificationError

    try:
        return _verify(document, keys, trusted_root=trusted_root, identity=identity, issuer=issuer)
    except VerificationError as exc:
        raise Failed(f"{label}: does NOT verify ({exc.code}): {exc.message}", code=exc.code) from exc
    except SigningError as exc:
        raise Failed(str(exc), code="verification_failed") from exc


def _fetch(api: Api, execution: str) -> tuple[dict[str, Any], bytes, str]:
    """The run's signed receipt (envelope or Sigstore bundle), its public key PEM, and ``receipt-<id8>``."""
    run = api.get(f"/api/executions/{path_segment(execution)}")
    found = api.get("/api/receipts", execution=run["id"], kind="execution")["results"]
    if not found:
        raise Failed(f"{run['id'][:8]} has no receipt yet (it is written when the run finishes)", code="no_receipt")
    receipt = found[0]
    if not receipt.get("envelope"):
        raise Failed(f"the receipt of {run['id'][:8]} is not signed yet; try again shortly", code="receipt_not_signed")
    pem = api.request("GET", f"/api/receipts/{receipt['id']}/key.pem", headers={"Accept": "application/x-pem-file"})
    return dict(receipt["envelope"]), pem.content, f"receipt-{run['id'][:8]}"


@handles_errors
def get(
    execution: Annotated[str, typer.Argument(metavar="EXECUTION", help="the execution's id (or a unique prefix).")],
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="where to write the two files.", file_okay=False)
    ] = Path("."),
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Save a run's signed receipt (the DSSE envelope) and the public key that signed it."""
    with api_session() as api:
        document, pem, name = _fetch(api, execution)
    directory.mkdir(parents=True, exist_ok=True)
    envelope_path, key_path = directory / f"{name}.json", directory / f"{name}.pub.pem"
    envelope_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    key_path.write_bytes(pem)
    if output == Output.json:
        emit_json({"execution": execution, "envelope": str(envelope_path), "key": str(key_path)})
        return
    say(f"wrote {envelope_path} and {key_path}")
    say(f"  verify offline: maestro receipt verify {envelope_path} --key {key_path}")
