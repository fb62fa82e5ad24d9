"""Runs in known states for the console's tests and bench: built by the real services, then
their step rows put where an engine would have left them (times, attempts, errors, logs).

Drawing a page needs a run in a given state, not a run that gets there: these builders
make the same rows the engine writes, in milliseconds, and sign the receipt for real.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from executions.choices import ExecutionStatus, StepKind, StepStatus
from executions.models import Execution, StepRun
from executions.services import execution_create
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.services import receipt_sign
from workflows.services import workflow_create, workflow_publish

FAILED_MESSAGE = "simulated outage: upstream answered 503"
WORKER = "celery@console-test"

MIXED = {
    "name": "nightly-report",
    "version": "1.0.0",
    "tasks": [
        {"id": "fetch", "uses": "pkg:mc/echo@1", "with": {"message": "fetch"}},
        {
            "id": "flaky",
            "uses": "pkg:mc/fail@1",
            "with": {"times": 1, "message": "blip"},
            "needs": ["fetch"],
            "retries": 2,
        },
        {"id": "boom", "uses": "pkg:mc/fail@1", "with": {"message": "simulated outage"}, "needs": ["fetch"]},
        {
            "id": "fanout",
            "uses": "pkg:mc/echo@1",
            "with": {"message": "${{ matrix.region }}"},
            "needs": ["fetch"],
            "strategy": {"matrix": {"region": ["eu", "us", "ap"]}},
        },
        {"id": "report", "uses": "pkg:mc/echo@1", "with": {"message": "done"}, "needs": ["flaky", "boom", "fanout"]},
    ],
}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _attempt(number: int, start: datetime, end: datetime, outcome: str, error: str = "") -> dict[str, Any]:
    record = {
        "attempt": number,
        "worker": WORKER,
        "pid": 4242,
        "started_at": _iso(start),
        "finished_at": _iso(end),
        "outcome": outcome,
    }
    if error:
        record["error"] = error
    return record


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _succeed(step: StepRun, start: datetime, millis: int, *, attempts: list[dict[str, Any]] | None = None) -> datetime:
    end = start + timedelta(milliseconds=millis)
    step.status = StepStatus.SUCCEEDED
    step.queued_at = step.queued_at or start - timedelta(milliseconds=3)
    step.started_at = step.started_at or start
    step.attempt_started_at = start
    step.finished_at = end
    step.attempt = len(attempts or []) + 1
    step.attempts = [*(attempts or []), _attempt(step.attempt, start, end, "succeeded")]
    step.worker, step.worker_pid = WORKER, 4242
    step.outputs = {"message": step.step_id}
    step.output_digest = "a" * 64
    step.input_digest = "b" * 64
    step.log = (step.log + "\n" if step.log else "") + (
        f"--- attempt {step.attempt} on {WORKER} ---\n{_stamp(start)} {step.step_id}: ok"
    )
    return end


def _shards(parent: StepRun, regions: list[str]) -> list[StepRun]:
    """The shard rows the dispatcher creates when a matrix task starts."""
    return StepRun.objects.bulk_create(
        StepRun(
            execution_id=parent.execution_id,
            step_id=parent.step_id,
            kind=StepKind.SHARD,
            parent=parent,
            shard_index=index,
            matrix={"region": region},
            sequence=parent.sequence,
            uses=parent.uses,
            with_template=parent.with_template,
            needs=parent.needs,
            queue=parent.queue,
            resource_class=parent.resource_class,
            timeout_seconds=parent.timeout_seconds,
            max_attempts=parent.max_attempts,
            status=StepStatus.QUEUED,
        )
        for index, region in enumerate(regions)
    )


def publish(tenant: Any, user: Any, doc: dict[str, Any]) -> Any:
    workflow = workflow_create(tenant=tenant, actor=user, manifest=doc)
    workflow_publish(workflow=workflow, actor=user)
    return workflow


def _rows(execution: Execution) -> dict[tuple[str, str, int], StepRun]:
    return {(s.kind, s.step_id, s.shard_index): s for s in StepRun.objects.filter(execution=execution)}


def _save(rows: dict[tuple[str, str, int], StepRun]) -> None:
    StepRun.objects.bulk_update(
        list(rows.values()),
        [
            "status",
            "queued_at",
            "started_at",
            "attempt_started_at",
            "finished_at",
            "attempt",
            "attempts",
            "worker",
            "worker_pid",
            "outputs",
            "output_digest",
            "input_digest",
            "log",
            "error",
        ],
        batch_size=500,
    )


def _settle(execution: Execution, status: str, finished: datetime | None, *, remaining: int = 0) -> Execution:
    execution.status = status
    execution.finished_at = finished
    execution.steps_remaining = remaining
    if status == ExecutionStatus.FAILED:
        execution.error = {"code": "step_failed", "message": f"step boom failed: {FAILED_MESSAGE}"}
    execution.save(update_fields=["status", "finished_at", "steps_remaining", "error"])
    return execution


def pending_receipt(execution: Execution) -> Receipt:
    """The unsigned receipt a run gets when it finishes (the receipts worker signs it soon after)."""
    return Receipt.objects.create(
        kind=ReceiptKind.EXECUTION,
        execution=execution,
        tenant_id=execution.tenant_id,
        subject_digest=execution.workflow_version.snapshot_ref or "",
        workflow_version=execution.workflow_version,
        record={"kind": "execution", "execution": str(execution.pk), "status": execution.status},
    )


def sign_receipt(execution: Execution) -> Receipt:
    receipt = pending_receipt(execution)
    signed = receipt_sign(receipt.pk)
    assert signed is not None
    return signed


def finished_run(tenant: Any, user: Any) -> Execution:
    """A failed run: fetch ok, flaky failed once then succeeded, boom failed, a 3-shard matrix, report skipped."""
    workflow = publish(tenant, user, MIXED)
    execution, _ = execution_create(tenant=tenant, actor=user, workflow=workflow)
    t0 = execution.started_at or timezone.now()
    rows = _rows(execution)
    fetched = _succeed(rows[(StepKind.STEP, "fetch", 0)], t0 + timedelta(milliseconds=5), 120)
    flaky = rows[(StepKind.STEP, "flaky", 0)]
    first_end = fetched + timedelta(milliseconds=210)
    flaky.queued_at = fetched
    flaky.log = f"--- attempt 1 on {WORKER} ---\n{_stamp(fetched)} ERROR step_failed: blip (attempt 1 of 1)"
    _succeed(
        flaky,
        first_end + timedelta(milliseconds=400),
        95,
        attempts=[_attempt(1, fetched + timedelta(milliseconds=2), first_end, "failed", "blip (attempt 1 of 1)")],
    )
    flaky.started_at = fetched + timedelta(milliseconds=2)
    boom = rows[(StepKind.STEP, "boom", 0)]
    boom_start, boom_end = fetched + timedelta(milliseconds=4), fetched + timedelta(milliseconds=380)
    boom.status, boom.queued_at, boom.started_at, boom.attempt_started_at = (
        StepStatus.FAILED,
        fetched,
        boom_start,
        boom_start,
    )
    boom.finished_at, boom.attempt, boom.worker, boom.worker_pid = boom_end, 1, WORKER, 4242
    boom.attempts = [_attempt(1, boom_start, boom_end, "failed", FAILED_MESSAGE)]
    boom.error = {"code": "step_failed", "message": FAILED_MESSAGE, "retryable": False}
    boom.log = (
        f"--- attempt 1 on {WORKER} ---\n{_stamp(boom_start)} calling upstream\n"
        f"{_stamp(boom_end)} ERROR step_failed: {FAILED_MESSAGE}"
    )
    fanout = rows[(StepKind.STEP, "fanout", 0)]
    for shard in _shards(fanout, ["eu", "us", "ap"]):
        rows[(StepKind.SHARD, "fanout", shard.shard_index)] = shard
        _succeed(shard, fetched + timedelta(milliseconds=10 + 30 * shard.shard_index), 60)
    fanout.status, fanout.queued_at, fanout.started_at = (
        StepStatus.SUCCEEDED,
        fetched,
        fetched + timedelta(milliseconds=10),
    )
    fanout.finished_at = fetched + timedelta(milliseconds=160)
    report = rows[(StepKind.STEP, "report", 0)]
    report.status = StepStatus.SKIPPED
    _save(rows)
    execution = _settle(execution, ExecutionStatus.FAILED, boom_end + timedelta(milliseconds=500))
    sign_receipt(execution)
    return execution


def running_run(tenant: Any, user: Any) -> Execution:
    """A run in flight: fetch done, flaky running its second attempt, the rest waiting."""
    workflow = publish(tenant, user, {**MIXED, "name": "live-report"})
    execution, _ = execution_create(tenant=tenant, actor=user, workflow=workflow)
    t0 = timezone.now() - timedelta(seconds=2)
    rows = _rows(execution)
    fetched = _succeed(rows[(StepKind.STEP, "fetch", 0)], t0, 150)
    flaky = rows[(StepKind.STEP, "flaky", 0)]
    flaky.status, flaky.queued_at, flaky.started_at = StepStatus.RUNNING, fetched, fetched + timedelta(milliseconds=3)
    flaky.attempt, flaky.attempt_started_at = 2, fetched + timedelta(milliseconds=700)
    flaky.worker, flaky.worker_pid = WORKER, 4242
    flaky.attempts = [_attempt(1, flaky.started_at, fetched + timedelta(milliseconds=300), "failed", "blip")]
    boom = rows[(StepKind.STEP, "boom", 0)]
    boom.status, boom.queued_at = StepStatus.QUEUED, fetched
    _save(rows)
    Execution.objects.filter(pk=execution.pk).update(started_at=t0)
    execution.refresh_from_db()
    return execution


def wide_manifest(steps: int = 1000, width: int = 50) -> dict[str, Any]:
    """``steps`` echo steps in layers of ``width``, each needing two steps of the layer before."""
    tasks = []
    for index in range(steps):
        task: dict[str, Any] = {"id": f"s{index:04d}", "uses": "pkg:mc/echo@1", "with": {"message": "x"}}
        if index >= width:
            layer_start = (index // width - 1) * width
            task["needs"] = sorted({f"s{layer_start + index % width:04d}", f"s{layer_start + (index * 7) % width:04d}"})
        tasks.append(task)
    return {"name": f"wide-{steps}", "version": "1.0.0", "tasks": tasks}


def big_run(tenant: Any, user: Any, steps: int = 1000) -> Execution:
    """A finished run of ``steps`` steps (layers of 50), every step succeeded with its timings."""
    workflow = publish(tenant, user, wide_manifest(steps))
    execution, _ = execution_create(tenant=tenant, actor=user, workflow=workflow)
    t0 = execution.started_at or timezone.now()
    rows = _rows(execution)
    end = t0
    for (_, step_id, _), row in rows.items():
        index = int(step_id[1:])
        start = t0 + timedelta(milliseconds=40 * (index // 50) + index % 50)
        end = max(end, _succeed(row, start, 30 + index % 7))
    _save(rows)
    return _settle(execution, ExecutionStatus.SUCCEEDED, end + timedelta(milliseconds=5))
