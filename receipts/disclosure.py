"""Disclosure bundles: everything a third party needs to check one run, in one ``.tgz``.

A bundle holds the run's signed receipt (the DSSE envelope, its statement decoded, the public
key), the manifest snapshot it ran, the policy decisions with the exact bundle sources that
made them, an SBOM of the environment, the step logs (capped), a README saying how to verify
and a ``SHA256SUMS`` of all of it. Its bytes depend only on what the database holds: entries
sorted, every mtime the run's end, owner 0, mode 0644, gzip without name or time. The first
bundle built for a receipt is kept in the artifacts storage under the receipt's digest, and
later requests serve those bytes, so one execution always gives the same file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import storages

from mc_project.errors import Conflict
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.services import decision_record

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STEP_LOG_LIMIT = 64 * 1024  # bytes of one step's log in a bundle
LOGS_BUDGET = 4 * 1024 * 1024  # bytes of all logs together; halved until the bundle fits MAX_BUNDLE_BYTES
MAX_BUNDLE_BYTES = 2 * 1024 * 1024
CACHE_PREFIX = f"disclosures/v{FORMAT_VERSION}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# The shell steps of docs/receipts.md ("Verify with plain openssl"), as written there; a test
# keeps the two the same.
OPENSSL_STEPS = """\
# 1. Read the three fields out of the envelope (its values hold no quotes or escapes).
field() { grep -o "\\"$1\\"[[:space:]]*:[[:space:]]*\\"[^\\"]*\\"" envelope.json | head -n 1 | sed 's/.*"\\([^"]*\\)"$/\\1/'; }
payload_type=$(field payloadType)
field payload | base64 -d > payload.json
field sig | base64 -d > sig.der

# 2. Build the PAE: "DSSEv1 <len type> <type> <len payload> <payload>".
printf 'DSSEv1 %d %s %d ' "${#payload_type}" "$payload_type" "$(wc -c < payload.json)" > pae.bin
cat payload.json >> pae.bin

# 3. Check the signature over the PAE.
openssl dgst -sha256 -verify public-key.pem -signature sig.der pae.bin
"""  # noqa: E501


@dataclass(frozen=True)
class LogEntry:
    """One step's log in a bundle: where it is, how long it was, and whether it was cut."""

    file: str
    step: str
    kind: str
    shard: int
    status: str
    bytes: int
    included_bytes: int
    cut: bool


def disclosure_get(*, execution: Any) -> bytes:
    """The disclosure bundle of ``execution``: the stored one, or built and stored now.

    Raises ``Conflict`` while the run has no signed receipt (``execution_not_finished``,
    ``no_receipt`` for a dry run, ``receipt_not_signed``).
    """
    receipt = disclosure_receipt(execution)
    storage = storages["artifacts"]
    name = _cache_name(receipt)
    if storage.exists(name):
        with storage.open(name, "rb") as handle:
            stored: bytes = handle.read()
        return stored
    data = disclosure_build(receipt)
    if not storage.exists(name):  # a concurrent build wrote the same bytes meanwhile
        storage.save(name, ContentFile(data))
    return data


def disclosure_receipt(execution: Any) -> Receipt:
    """The signed execution receipt of ``execution``, or ``Conflict`` saying why there is none yet."""
    receipt = Receipt.objects.filter(kind=ReceiptKind.EXECUTION, execution_id=execution.pk).first()
    if receipt is None:
        if not execution.is_terminal:
            raise Conflict(
                "The execution has not finished: its receipt is written when it does.", code="execution_not_finished"
            )
        raise Conflict("The execution has no receipt (a dry run runs nothing).", code="no_receipt")
    if receipt.envelope is None or not receipt.digest:
        raise Conflict(
            "The execution's receipt is not signed yet; try again in a few seconds.",
            code="receipt_not_signed",
            details=[{"path": "/receipt", "message": f"receipt {receipt.pk} is waiting to be signed"}],
        )
    return receipt


def disclosure_filename(execution: Any) -> str:
    return f"mc-disclosure-{execution.pk}.tgz"


def disclosure_build(receipt: Receipt) -> bytes:
    """Build the bundle of a signed execution receipt (no cache): the same bytes every time."""
    from executions.models import Execution

    execution = Execution.objects.select_related("workflow", "workflow_version").get(
        pk=receipt.execution_id  # type: ignore[misc]  # disclosure_receipt only returns execution receipts
    )
    root = disclosure_filename(execution).removesuffix(".tgz")
    mtime = int(execution.finished_at.timestamp()) if execution.finished_at else 0
    budget = LOGS_BUDGET
    while True:
        data = _tar_gz(disclosure_files(receipt, execution, logs_budget=budget), root=root, mtime=mtime)
        if len(data) <= MAX_BUNDLE_BYTES or budget == 0:
            break
        budget = budget // 2 if budget > 4096 else 0  # halve, then no logs at all
    if len(data) > MAX_BUNDLE_BYTES:
        logger.warning("disclosure bundle of %s is %d bytes even without logs", execution.pk, len(data))
    return data


def disclosure_files(receipt: Receipt, execution: Any, *, logs_budget: int = LOGS_BUDGET) -> dict[str, bytes]:
    """Every file of the bundle by its path inside it, ``SHA256SUMS`` and ``README.md`` included."""
    from receipts.sbom import sbom_json

    envelope, sigstore_bundle = _envelope_of(receipt)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    files: dict[str, bytes] = {"envelope.json": _json(envelope), "statement.json": _json(statement)}
    if sigstore_bundle is not None:
        files["receipt.sigstore.json"] = _json(sigstore_bundle)
    keys = _public_keys_pem(envelope, keyless=sigstore_bundle is not None)
    if keys:
        files["public-key.pem"] = keys
    files["manifest.json"] = _snapshot(execution)
    files.update(_policy_files(execution))
    files["sbom.cdx.json"] = sbom_json()
    logs, entries = _logs(execution, budget=logs_budget)
    files.update(logs)
    files["disclosure.json"] = _json(_summary(receipt, execution, entries))
    files["README.md"] = _readme(receipt, execution, statement, files, entries)
    files["SHA256SUMS"] = sha256sums(files)
    return files


def sha256sums(files: dict[str, bytes]) -> bytes:
    """``sha256sum``'s format (``<hex>  <path>``), one line per file, sorted by path."""
    lines = [f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n" for path in sorted(files) if path != "SHA256SUMS"]
    return "".join(lines).encode("utf-8")


# --- the parts ----------------------------------------------------------------------------------


def _envelope_of(receipt: Receipt) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The DSSE envelope, and the whole Sigstore bundle when the receipt was signed keyless."""
    from receipts.signing import is_sigstore_bundle

    document = dict(receipt.envelope or {})
    if is_sigstore_bundle(document):
        return dict(document["dsseEnvelope"]), document
    return document, None


def receipt_public_keys_pem(receipt: Receipt) -> bytes:
    """PEM of the public keys that signed ``receipt`` (empty for a keyless or unsigned one)."""
    if not receipt.envelope:
        return b""
    envelope, sigstore_bundle = _envelope_of(receipt)
    return _public_keys_pem(envelope, keyless=sigstore_bundle is not None)


def _public_keys_pem(envelope: dict[str, Any], *, keyless: bool) -> bytes:
    """PEM of MC's public keys that signed ``envelope`` (at least the signing key, for a key signer)."""
    from receipts.signing.keys import key_id, public_key_pem
    from receipts.signing.runtime import signing_public_key, verification_keys

    if keyless:  # the key is in the Sigstore bundle's certificate
        return b""
    known = {key_id(key): key for key in verification_keys()}
    signed_by = [str(signature.get("keyid", "")) for signature in envelope.get("signatures", [])]
    keys = [known[kid] for kid in dict.fromkeys(signed_by) if kid in known]
    if not keys:
        signing = signing_public_key()
        keys = [signing] if signing is not None else []
    return b"".join(public_key_pem(key) for key in keys)


def _snapshot(execution: Any) -> bytes:
    """The exact canonical bytes ``/api/snapshots/sha256:<hex>`` serves for the run's version."""
    from workflows.models import WorkflowVersion

    canonical = WorkflowVersion.objects.values_list("canonical", flat=True).get(pk=execution.workflow_version_id)
    return bytes(canonical or b"")


def _policy_files(execution: Any) -> dict[str, bytes]:
    """``policy/decisions.json`` and, under ``policy/bundles/<pack>/<revision>/``, the sources that decided."""
    from policy.models import PolicyDecision

    files: dict[str, bytes] = {}
    decisions = []
    rows = PolicyDecision.objects.filter(execution_id=execution.pk).select_related("bundle")
    for decision in rows.order_by("created_at", "pack", "pk"):
        directory = None
        sources = _bundle_sources(decision)
        if sources:
            revision = _UNSAFE.sub("_", decision.revision) or decision.bundle_digest.removeprefix("sha256:")[:16]
            directory = f"policy/bundles/{_UNSAFE.sub('_', decision.pack)}/{revision}"
            files.update({f"{directory}/{path}": content for path, content in sources.items()})
        decisions.append(
            {
                **decision_record(decision),
                "decided_at": decision.created_at.isoformat(),
                "sources": f"{directory}/" if directory else None,
            }
        )
    files["policy/decisions.json"] = _json(decisions)
    return files


def _bundle_sources(decision: Any) -> dict[str, bytes]:
    """The files of the bundle revision that made ``decision``, if MC still has exactly those."""
    if decision.bundle is not None:
        files = {path: _text_bytes(content) for path, content in decision.bundle.files.items()}
    else:  # decided by the pack shipped with MC (no uploaded revision was active)
        from policy.services import BUNDLES_DIR

        files = _read_bundle_dir(BUNDLES_DIR / decision.pack)
    files = {path: content for path, content in files.items() if _safe_path(path)}
    if not files or _bundle_digest(files) != decision.bundle_digest:
        return {}  # not the bytes that decided: better none than wrong ones
    return files


def _read_bundle_dir(directory: Path) -> dict[str, bytes]:
    """The files a bundle directory contributes (as ``policy.engine`` reads them): manifest, data, Rego."""
    if not directory.is_dir():
        return {}
    return {
        file.relative_to(directory).as_posix(): file.read_bytes()
        for file in sorted(directory.rglob("*"))
        if file.is_file()
        and not file.is_symlink()
        and (file.name in (".manifest", "data.json") or file.name.endswith(".rego"))
    }


def _bundle_digest(files: dict[str, bytes]) -> str:
    """A bundle's digest: sha256 of its ``sha256sum`` listing (``policy.engine.bundle``'s rule)."""
    return "sha256:" + hashlib.sha256(sha256sums(files)).hexdigest()


def _logs(execution: Any, *, budget: int) -> tuple[dict[str, bytes], list[LogEntry]]:
    """Each step's log as ``logs/<step>.log``, cut to ``STEP_LOG_LIMIT`` and to what is left of ``budget``."""
    from executions.models import StepRun

    files: dict[str, bytes] = {}
    entries: list[LogEntry] = []
    steps = (
        StepRun.objects.filter(execution_id=execution.pk)
        .exclude(log="")
        .order_by("kind", "sequence", "shard_index")
        .only("step_id", "kind", "shard_index", "status", "log")
    )
    for step in steps:
        label = step.step_id if step.kind == "step" else f"{step.step_id}.{step.kind}-{step.shard_index}"
        name = f"logs/{_UNSAFE.sub('_', label)}.log"
        raw = step.log.encode("utf-8")
        content = _cut(raw, min(STEP_LOG_LIMIT, budget))
        budget = max(0, budget - len(content))
        files[name] = content
        entries.append(
            LogEntry(
                name, step.step_id, step.kind, step.shard_index, step.status, len(raw), len(content), content != raw
            )
        )
    return files, entries


def _cut(raw: bytes, limit: int) -> bytes:
    """``raw`` if it fits in ``limit``, else its head and tail around a line saying what was cut."""
    if len(raw) <= limit:
        return raw
    marker = f"\n[... MC disclosure: log cut, {{}} of {len(raw)} bytes omitted here ...]\n"
    room = limit - len(marker.format(len(raw)).encode())
    if room < 256:
        return f"[... MC disclosure: log of {len(raw)} bytes omitted: over the bundle's log budget ...]\n".encode()
    head = raw[: room // 2].decode("utf-8", "ignore").encode("utf-8")
    tail = raw[len(raw) - room // 2 :].decode("utf-8", "ignore").encode("utf-8")
    return head + marker.format(len(raw) - len(head) - len(tail)).encode() + tail


def _summary(receipt: Receipt, execution: Any, logs: list[LogEntry]) -> dict[str, Any]:
    """``disclosure.json``: what the bundle is about, and which logs were cut."""
    from receipts.sbom import SPEC_VERSION

    return {
        "format": FORMAT_VERSION,
        "execution": str(execution.pk),
        "workflow": execution.workflow.name,
        "version": execution.workflow_version.version,
        "status": execution.status,
        "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
        "receipt": {
            "id": str(receipt.pk),
            "sequence": receipt.sequence,
            "digest": receipt.digest,
            "previous_digest": receipt.previous_digest or None,
            "key_id": receipt.key_id,
            "signed_at": receipt.signed_at.isoformat() if receipt.signed_at else None,
        },
        "sbom": {"format": "CycloneDX", "spec_version": SPEC_VERSION, "of": "the environment that built this bundle"},
        "logs": {"step_limit_bytes": STEP_LOG_LIMIT, "steps": [asdict(entry) for entry in logs]},
    }


def _readme(
    receipt: Receipt, execution: Any, statement: dict[str, Any], files: dict[str, bytes], logs: list[LogEntry]
) -> bytes:
    snapshot: dict[str, Any] = next(
        (s for s in statement.get("subject", []) if s.get("name") == "workflow-snapshot"), {}
    )
    cut = [entry.file for entry in logs if entry.cut]
    has_key = "public-key.pem" in files
    lines: list[str | None] = [
        f"# Disclosure bundle of execution {execution.pk}",
        "",
        f"Workflow `{execution.workflow.name}` version `{execution.workflow_version.version}`, "
        f"status `{execution.status}`, finished {execution.finished_at.isoformat() if execution.finished_at else '-'}.",
        f"Receipt `{receipt.pk}`, number {receipt.sequence} of its tenant's chain, digest `{receipt.digest}`, "
        f"previous `{receipt.previous_digest or '(none: first receipt)'}`, signed by key `{receipt.key_id}`.",
        "",
        "| file | what |",
        "|---|---|",
        "| `envelope.json` | the signed receipt: a DSSE envelope over an in-toto statement |",
        "| `statement.json` | the statement inside the envelope, decoded and pretty-printed for reading |",
        "| `public-key.pem` | MC's public key(s) that signed the envelope |" if has_key else None,
        "| `receipt.sigstore.json` | the Sigstore bundle (keyless signature) |"
        if "receipt.sigstore.json" in files
        else None,
        "| `manifest.json` | the workflow snapshot that ran, byte for byte as MC stores it |",
        "| `policy/decisions.json` | every policy decision about the run |",
        "| `policy/bundles/<pack>/<revision>/` | the policy sources (Rego, data) of each revision that decided |",
        "| `sbom.cdx.json` | CycloneDX 1.6 SBOM of the Python environment of the MC that built this bundle |",
        "| `logs/<step>.log` | step logs, as stored, cut to 64 KiB each (see `disclosure.json`) |",
        "| `disclosure.json` | what this bundle is about, and which logs were cut |",
        "| `SHA256SUMS` | SHA-256 of every other file |",
        "",
        "## 1. Check the files",
        "",
        "```sh",
        "sha256sum -c SHA256SUMS",
        "```",
        "",
        "This catches damage in transit. It proves nothing about origin: that is the signature's job.",
        "",
        "## 2. Check the signature (openssl only)",
        "",
        'In this directory, in a POSIX shell (from MC\'s docs/receipts.md, "Verify with plain openssl"):',
        "",
        "```sh",
        OPENSSL_STEPS.rstrip("\n"),
        "```",
        "",
        "`Verified OK` means `payload.json` is exactly the statement MC signed. Then check that the",
        "envelope's `keyid` is the key id of `public-key.pem`:",
        "",
        "```sh",
        "openssl pkey -pubin -in public-key.pem -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1",
        "```",
        "",
        "With MC installed, `manage.py mc_receipt verify envelope.json --key public-key.pem` does both.",
        "",
        "## 3. Tie the files to the signed statement",
        "",
        f"- `sha256sum manifest.json` must print `{(snapshot.get('digest') or {}).get('sha256', '?')}`, "
        "the digest of the `workflow-snapshot` subject.",
        "- `statement.json` must be the same JSON document as `payload.json`:",
        "  `python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))'"
        " payload.json statement.json`.",
        "- Each policy decision in the statement names its bundle's digest; the sources in",
        "  `policy/bundles/<pack>/<revision>/` must hash to it (SHA-256 of their sorted `sha256sum` listing):",
        "",
        "  ```sh",
        "  (cd policy/bundles/PACK/REVISION && find . -type f | sed 's|^\\./||' | LC_ALL=C sort |",
        '      while IFS= read -r f; do sha256sum "$f"; done) | sha256sum',
        "  ```",
        "",
        "## What the signature does not cover",
        "",
        "The step logs, the SBOM and this README are not part of the signed statement: they are",
        "MC's account, covered only by `SHA256SUMS`. The signed facts are the steps' status, times",
        "and input/output digests, the snapshot and the policy decisions.",
    ]
    if cut:
        lines += ["", f"Logs cut to fit: {', '.join(f'`{name}`' for name in cut)}."]
    return ("\n".join(line for line in lines if line is not None) + "\n").encode("utf-8")


# --- packing ------------------------------------------------------------------------------------


def _tar_gz(files: dict[str, bytes], *, root: str, mtime: int) -> bytes:
    """A gzip'd tar of ``files`` under ``root/``: sorted, fixed mtime, owner 0, mode 0644, no gzip name or time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size = len(files[path])
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[path]))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as stream:
        stream.write(raw.getvalue())
    return compressed.getvalue()


def _cache_name(receipt: Receipt) -> str:
    digest = receipt.digest.removeprefix("sha256:")
    return f"{CACHE_PREFIX}/{digest[:2]}/{digest}.tgz"


def _json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _text_bytes(content: Any) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else _json(content)


def _safe_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not PurePosixPath(path).is_absolute() and ".." not in parts
