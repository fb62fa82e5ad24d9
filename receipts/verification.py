"""Verifying receipts against MC's keys and database: one receipt, or a tenant's whole chain.

Each check names what it looked at and, when it fails, what was wrong, so that an
operator reading ``GET /api/receipts/{id}/verify`` knows where to look.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mc_project.metrics import verification_counted
from receipts.models import Receipt


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


@dataclass
class Verdict:
    """The outcome of verifying one receipt (``ok`` only if every check passed)."""

    receipt: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "ok": self.ok, "checks": [asdict(check) for check in self.checks]}


@verification_counted
def receipt_verify(receipt: Receipt) -> Verdict:
    """Signature and key, the link to the previous receipt, and that the database still says what was signed."""
    from receipts.services import payload_digest, statement_for
    from receipts.signing.dsse import verify_envelope_detailed
    from receipts.signing.errors import VerificationError
    from receipts.signing.runtime import verification_keys

    verdict = Verdict(str(receipt.pk))
    if not receipt.envelope:
        verdict.checks.append(Check("signed", False, "the receipt is not signed yet"))
        return verdict
    envelope = receipt.envelope.get("dsseEnvelope", receipt.envelope)  # a Sigstore bundle carries it inside
    try:
        verified = verify_envelope_detailed(envelope, verification_keys())
    except VerificationError as exc:
        verdict.checks.append(Check("signature", False, str(exc)))
        return verdict
    verdict.checks.append(Check("signature", True, f"signed by key {verified.key_id}"))
    digest = payload_digest(envelope)
    verdict.checks.append(
        Check(
            "digest",
            digest == receipt.digest,
            f"payload digest {digest}" + ("" if digest == receipt.digest else f" but the row says {receipt.digest}"),
        )
    )
    verdict.checks.append(_link_check(receipt, verified.statement))
    current = statement_for(receipt)
    differences = _differences(verified.statement, current)
    message = (
        "the database holds what was signed"
        if not differences
        else "changed since signing: " + "; ".join(differences[:10])
    )
    verdict.checks.append(Check("database", not differences, message))
    return verdict


def _link_check(receipt: Receipt, statement: Any) -> Check:
    signed = (statement.get("predicate") or {}).get("receipt") or {}
    sequence, previous = signed.get("sequence") or 0, signed.get("previous") or ""
    if sequence != (receipt.sequence or 0) or previous != receipt.previous_digest:
        return Check("chain", False, f"the signed sequence/previous ({sequence}, {previous}) differ from the row's")
    if sequence == 1:
        return Check(
            "chain",
            previous == "",
            "first receipt of the tenant" if previous == "" else "first receipt names a predecessor",
        )
    before = Receipt.objects.filter(tenant_id=receipt.tenant_id, sequence=sequence - 1).only("digest").first()
    if before is None:
        return Check("chain", False, f"receipt #{sequence - 1}, its predecessor, is missing")
    if before.digest != previous:
        return Check(
            "chain", False, f"receipt #{sequence - 1} has digest {before.digest}, but this one names {previous}"
        )
    return Check("chain", True, f"follows receipt #{sequence - 1} ({previous})")


def _differences(signed: Any, current: Any, path: str = "") -> list[str]:
    if isinstance(signed, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(signed) | set(current)):
            found += _differences(signed.get(key), current.get(key), f"{path}/{key}")
        return found
    if isinstance(signed, list) and isinstance(current, list) and len(signed) == len(current):
        found = []
        for index, (a, b) in enumerate(zip(signed, current, strict=True)):
            found += _differences(a, b, f"{path}/{index}")
        return found
    return [] if signed == current else [f"{path or '/'}: signed {_short(signed)}, now {_short(current)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class ChainVerdict:
    tenant: str
    receipts: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "ok": self.ok, "receipts": self.receipts, "problems": self.problems}


def chain_verify(tenant: Any) -> ChainVerdict:
    """Walk a tenant's signed receipts in sequence order: gaps, broken links, bad signatures, edits."""
    verdict = ChainVerdict(tenant.slug)
    expected, previous_digest = 1, ""
    for receipt in Receipt.objects.filter(tenant=tenant, sequence__isnull=False).order_by("sequence"):
        verdict.receipts += 1
        sequence = receipt.sequence or 0
        if sequence != expected:
            verdict.problems.append(f"receipt #{expected} to #{sequence - 1} missing before {receipt.pk}")
        elif receipt.previous_digest != previous_digest:
            verdict.problems.append(
                f"receipt #{receipt.sequence} ({receipt.pk}) names {receipt.previous_digest or 'no predecessor'}, "
                f"but #{expected - 1} has digest {previous_digest or 'none'}"
            )
        for check in receipt_verify(receipt).checks:
            if not check.ok and check.name != "chain":
                verdict.problems.append(f"receipt #{receipt.sequence} ({receipt.pk}): {check.name}: {check.message}")
        expected, previous_digest = (receipt.sequence or 0) + 1, receipt.digest
    return verdict
