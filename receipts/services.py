"""Writes for receipts: record what was published and run, then sign it into the tenant's chain.

A receipt row is created in the transaction that publishes a version or finishes a run,
unsigned. Signing happens after commit, on the ``mc.receipts`` queue (``receipts.sign``),
never on the request path: it takes the tenant's chain lock, gives the receipt the next
sequence number and its predecessor's digest, builds the in-toto statement from what the
database holds, signs it and stores the DSSE envelope. The ``receipts.sign_pending`` beat
signs any receipt whose message was lost, so every finished run ends up with one.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from mc_project.metrics import receipt_signed_counted
from receipts.choices import ReceiptKind
from receipts.models import Receipt

logger = logging.getLogger(__name__)

PREDICATE_TYPES: dict[str, str] = {
    ReceiptKind.PUBLISH: "https://maestro-conductor.dev/receipts/publish/v1",
    ReceiptKind.EXECUTION: "https://maestro-conductor.dev/receipts/execution/v1",
    ReceiptKind.ROLLBACK: "https://maestro-conductor.dev/receipts/rollback/v1",
}
SIGN_TASK = "receipts.sign"


@transaction.atomic
def publish_record_create(*, version: Any, actor: Any) -> Receipt:
    """Record that ``actor`` published ``version`` (a ``WorkflowVersion``); signed after commit."""
    workflow = version.workflow
    record = {
        "kind": ReceiptKind.PUBLISH.value,
        "tenant": workflow.tenant.slug,
        "workflow": workflow.name,
        "workflow_id": str(workflow.id),
        "version": version.version,
        "snapshot": version.snapshot_ref,
        "actor": actor.get_username() if actor else None,
        "published_at": version.published_at.isoformat(),
    }
    receipt = Receipt.objects.create(
        tenant=workflow.tenant,
        kind=ReceiptKind.PUBLISH,
        subject_digest=version.snapshot_ref,
        workflow_version=version,
        actor=actor,
        record=record,
    )
    sign_after_commit(receipt)
    return receipt


def rollback_record_create(
    *, release: Any, actor: Any, reason: str, trigger: str, figures: dict[str, Any] | None
) -> Receipt:
    """Record that ``release`` (a ``CanaryRelease``) was rolled back, call inside that transaction; signed after commit.

    Subjects: the version taken out of traffic and the version restored. The predicate says
    who or what rolled it back (``trigger``: analysis, webhook or manual), why, and for an
    automatic rollback the figures that breached.
    """
    workflow = release.workflow
    withdrawn, restored = release.canary_version, release.stable_version
    record = {
        "kind": ReceiptKind.ROLLBACK.value,
        "tenant": workflow.tenant.slug,
        "workflow": workflow.name,
        "workflow_id": str(workflow.id),
        "release": release.pk,
        "strategy": release.strategy,
        "withdrawn": {"version": withdrawn.version, "snapshot": withdrawn.snapshot_ref},
        "restored": {"version": restored.version, "snapshot": restored.snapshot_ref},
        "trigger": trigger,
        "actor": actor.get_username() if getattr(actor, "pk", None) else None,
        "reason": reason[:500],
        "analysis": figures,
        "rolled_back_at": release.ended_at.isoformat() if release.ended_at else None,
    }
    receipt = Receipt.objects.create(
        tenant=workflow.tenant,
        kind=ReceiptKind.ROLLBACK,
        subject_digest=withdrawn.snapshot_ref or "",
        workflow_version=withdrawn,
        actor=actor if getattr(actor, "pk", None) else None,
        record=record,
    )
    sign_after_commit(receipt)
    return receipt


def execution_record_create(execution: Any) -> Receipt | None:
    """The unsigned receipt of a run that just finished (call inside its transaction); None for a dry run.

    ``execution`` needs its ``tenant_id``, ``mode``, ``status`` and ``workflow_version_id``
    (the engine's locked bookkeeping row has them). A run has one receipt: if it has one
    already, that one is returned.
    """
    from executions.choices import ExecutionMode

    if execution.mode != ExecutionMode.RUN:
        return None
    receipt = Receipt(
        kind=ReceiptKind.EXECUTION,
        execution_id=execution.pk,
        tenant_id=execution.tenant_id,
        subject_digest=_snapshot_ref(execution.workflow_version_id),
        workflow_version_id=execution.workflow_version_id,
        record={"kind": ReceiptKind.EXECUTION.value, "execution": str(execution.pk), "status": execution.status},
    )
    try:
        with transaction.atomic():
            receipt.save(force_insert=True)
    except IntegrityError:
        return Receipt.objects.get(kind=ReceiptKind.EXECUTION, execution_id=execution.pk)
    sign_after_commit(receipt)
    return receipt


_snapshot_refs: dict[Any, str] = {}


def _snapshot_ref(version_id: Any) -> str:
    """``sha256:<digest>`` of a published version (they never change: read once per process)."""
    ref = _snapshot_refs.get(version_id)
    if ref is None:
        from workflows.models import WorkflowVersion

        digest = WorkflowVersion.objects.values_list("digest", flat=True).get(pk=version_id)
        ref = _snapshot_refs[version_id] = f"sha256:{digest}" if digest else ""
        if len(_snapshot_refs) > 10_000:
            _snapshot_refs.clear()
    return ref


def sign_after_commit(receipt: Receipt) -> None:
    """Send ``receipts.sign`` for ``receipt`` once the transaction that made it commits.

    A broker that refuses is logged, not raised: the receipt is saved, and the
    ``receipts.sign_pending`` beat signs it once the broker is back.
    """
    from mc_project.celery import app

    receipt_id = str(receipt.pk)
    transaction.on_commit(
        lambda: app.send_task(SIGN_TASK, args=[receipt_id], task_id=f"mc-receipt-{receipt_id}", ignore_result=True),
        robust=True,
    )


def receipt_sign(receipt_id: Any) -> Receipt | None:
    """Sign a receipt into its tenant's chain; None if it is gone. Signing twice does nothing."""
    from receipts.signing.dsse import sign_statement
    from receipts.signing.runtime import get_signer

    signer = get_signer()  # before the lock: it may read key files
    with transaction.atomic():
        receipt = Receipt.objects.filter(pk=receipt_id).only("id", "tenant_id", "signed_at").first()
        if receipt is None or receipt.signed_at is not None:
            return receipt
        _chain_lock(receipt.tenant_id)
        receipt = Receipt.objects.select_for_update().get(pk=receipt_id)
        if receipt.signed_at is not None:
            return receipt
        previous = (
            Receipt.objects.filter(tenant_id=receipt.tenant_id, sequence__isnull=False)
            .order_by("-sequence")
            .only("sequence", "digest")
            .first()
        )
        receipt.sequence = (previous.sequence or 0) + 1 if previous else 1
        receipt.previous_digest = previous.digest if previous else ""
        statement = statement_for(receipt)
        signed = sign_statement(statement, signer)
        receipt.envelope = signed.sigstore_bundle or signed.envelope
        receipt.digest = payload_digest(signed.envelope)
        receipt.key_id = signed.key_id
        receipt.signed_at = timezone.now()
        receipt.save(update_fields=["sequence", "previous_digest", "envelope", "digest", "key_id", "signed_at"])
    receipt_signed_counted(str(receipt.kind))
    return receipt


def receipts_sign_pending(older_than_s: float = 30.0) -> int:
    """Sign receipts left unsigned (their message lost); return how many were signed."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    pending = Receipt.objects.filter(signed_at__isnull=True, created_at__lt=cutoff).order_by("created_at")
    signed = 0
    for receipt_id in pending.values_list("pk", flat=True)[:500]:
        try:
            receipt_sign(receipt_id)
            signed += 1
        except Exception:  # one bad receipt must not stop the others; it is retried next beat
            logger.exception("could not sign receipt %s", receipt_id)
    return signed


def payload_digest(envelope: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the envelope's payload: the signed statement's canonical bytes."""
    import base64

    return "sha256:" + hashlib.sha256(base64.b64decode(envelope["payload"])).hexdigest()


def _chain_lock(tenant_id: Any) -> None:
    """Serialise signing per tenant, so sequence numbers and links never fork."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"mc.receipts:{tenant_id}"])
    else:  # SQLite: a first write takes the database's one write lock
        Receipt.objects.filter(tenant_id=tenant_id, sequence=0).update(digest="")


# --- statements ---------------------------------------------------------------------------------


def statement_for(receipt: Receipt) -> dict[str, Any]:
    """The in-toto statement of ``receipt`` as the database holds it now (also used to verify)."""
    from receipts.signing.statement import build_statement, subject

    if receipt.kind == ReceiptKind.EXECUTION:
        subjects, predicate = _execution_facts(receipt)
    elif receipt.kind == ReceiptKind.ROLLBACK:
        predicate = dict(receipt.record)
        subjects = [
            subject("withdrawn-workflow-snapshot", receipt.subject_digest),
            subject("restored-workflow-snapshot", predicate["restored"]["snapshot"] or ""),
        ]
    else:
        subjects = [subject("workflow-snapshot", receipt.subject_digest)]
        predicate = dict(receipt.record)
    predicate["tenant"] = predicate.get("tenant") or _tenant_slug(receipt.tenant_id)
    predicate["receipt"] = {
        "id": str(receipt.pk),
        "kind": receipt.kind,
        "sequence": receipt.sequence,
        "previous": receipt.previous_digest or None,
    }
    return dict(build_statement(subjects=subjects, predicate_type=PREDICATE_TYPES[receipt.kind], predicate=predicate))


_EXECUTION_FACTS = (
    "id",
    "status",
    "inputs_digest",
    "started_at",
    "finished_at",
    "workflow__name",
    "workflow_version__version",
    "workflow_version__digest",
    "tenant__slug",
)
_STEP_FACTS = (
    "id",
    "step_id",
    "kind",
    "sequence",
    "shard_index",
    "uses",
    "status",
    "attempts",
    "queue",
    "started_at",
    "finished_at",
    "input_digest",
    "output_digest",
)
_DECISION_FACTS = (
    "id",
    "created_at",
    "stage",
    "pack",
    "revision",
    "bundle_digest",
    "input_digest",
    "mode",
    "result",
    "deny",
    "warn",
)


def _execution_facts(receipt: Receipt) -> tuple[list[Any], dict[str, Any]]:
    from executions.models import Execution, StepRun
    from policy.models import PolicyDecision
    from receipts.signing.statement import subject

    # Only the columns the statement states: a run's plan, inputs, outputs and manifest can be large.
    execution = (
        Execution.objects.select_related("workflow", "workflow_version", "tenant")
        .only(*_EXECUTION_FACTS)
        .get(pk=receipt.execution_id)  # type: ignore[misc]  # an execution receipt always names its run
    )
    version = execution.workflow_version
    subjects = [subject("workflow-snapshot", version.snapshot_ref or "")]
    steps = []
    rows = StepRun.objects.filter(execution=execution).only(*_STEP_FACTS).order_by("kind", "sequence", "shard_index")
    for step in rows:
        name = step.step_id if step.kind == "step" else f"{step.kind}:{step.step_id}:{step.shard_index}"
        if step.output_digest:
            subjects.append(subject(f"step:{name}/outputs", step.output_digest))
        steps.append(
            {
                "id": step.step_id,
                "kind": step.kind,
                "shard": step.shard_index,
                "uses": step.uses,
                "status": step.status,
                "attempts": [
                    {key: attempt.get(key) for key in ("attempt", "worker", "started_at", "finished_at", "outcome")}
                    for attempt in step.attempts
                ],
                "queue": step.queue,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "input_digest": _prefixed(step.input_digest),
                "output_digest": _prefixed(step.output_digest),
            }
        )
    decisions = [
        decision_record(decision)
        for decision in PolicyDecision.objects.filter(execution=execution)
        .only(*_DECISION_FACTS)
        .order_by("created_at", "pack")
    ]
    predicate = {
        "execution": str(execution.pk),
        "tenant": execution.tenant.slug,
        "workflow": execution.workflow.name,
        "version": version.version,
        "snapshot": version.snapshot_ref,
        "inputs_digest": _prefixed(execution.inputs_digest),
        "status": execution.status,
        "started_at": _iso(execution.started_at),
        "finished_at": _iso(execution.finished_at),
        "steps": steps,
        "policy_decisions": decisions,
    }
    return subjects, predicate


def decision_record(decision: Any) -> dict[str, Any]:
    """A policy decision as receipts and disclosure bundles state it."""
    return {
        "id": str(decision.pk),
        "stage": decision.stage,
        "pack": decision.pack,
        "revision": decision.revision,
        "bundle_digest": decision.bundle_digest,
        "input_digest": decision.input_digest,
        "mode": decision.mode,
        "result": decision.result,
        "deny": decision.deny,
        "warn": decision.warn,
    }


def _tenant_slug(tenant_id: Any) -> str:
    from mc_project.tenancy.models import Tenant

    return str(Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _prefixed(digest: str) -> str | None:
    if not digest:
        return None
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"
