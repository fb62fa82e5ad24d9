"""Bookkeeping of running executions: queue ready steps, record outcomes, settle, compensate.

Lock order, everywhere: the execution row first, then step rows. Every transaction that
finishes a step holds the execution lock, so releasing a dependent whose needs finish
at the same moment happens exactly once, and exactly one transaction sees the last step
finish. Messages are sent with ``transaction.on_commit``: a worker never sees a row
that is not committed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from executions.choices import (
    STEP_NOT_STARTED,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    ExecutionStatus,
    StepKind,
    StepStatus,
)
from executions.expressions import merge_shard_outputs
from executions.models import Execution, StepRun
from executions.planner import matrix_shards, step_priorities
from executions.services.messages import Message, after_commit_robust, message_for, send_chord, send_steps
from executions.services.outputs import outputs_load, outputs_store
from executions.services.quotas import quota_release
from executions.transitions import execution_transition, step_transition, steps_transition
from mc_project.celery import app as celery_app


def backoff_delay(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, capped, with jitter downwards.

    The jitter only shortens a delay by up to ``jitter`` of itself, so with a factor of at
    least 2 each wait is still longer than the one before until the cap.
    """
    conf = settings.MC_RETRY_BACKOFF
    delay = min(conf["cap"], conf["base"] * conf["factor"] ** (attempt - 1))
    return float(delay * (1 - conf["jitter"] * random.random()))  # noqa: S311 - jitter, not crypto


# --- queueing -------------------------------------------------------------------------------


def queue_steps(execution: Execution, steps: Iterable[StepRun]) -> None:
    """Queue ``steps`` (pending, needs all met) and send them after commit.

    A matrix task becomes ``running`` with one shard row per combination, sent as a chord.
    """
    now = timezone.now()
    plain: list[StepRun] = []
    for step in steps:
        if step.matrix:
            _queue_matrix(execution, step, now)
        else:
            plain.append(step)
    if not plain:
        return
    # One conditional UPDATE for the lot: a fan-out of 999 steps is one statement.
    steps_transition(
        StepRun.objects.filter(pk__in=[step.pk for step in plain]),
        [StepStatus.PENDING],
        StepStatus.QUEUED,
        queued_at=now,
    )
    _send_on_commit(execution, plain)


def _send_on_commit(execution: Execution, steps: list[StepRun]) -> None:
    if not steps:
        return
    messages = [message_for(step, tenant_id=execution.tenant_id) for step in steps]
    transaction.on_commit(lambda: send_steps(messages))


def _queue_matrix(execution: Execution, parent: StepRun, now: Any) -> None:
    combinations = parent.matrix or []  # the shard combinations, in manifest order (see steps_create)
    shards = StepRun.objects.bulk_create(
        StepRun(
            execution=execution,
            step_id=parent.step_id,
            kind=StepKind.SHARD,
            parent=parent,
            shard_index=index,
            matrix=values,
            max_parallel=parent.max_parallel,
            sequence=parent.sequence,
            priority=parent.priority,
            uses=parent.uses,
            with_template=parent.with_template,
            needs=parent.needs,
            queue=parent.queue,
            resource_class=parent.resource_class,
            data_classes=parent.data_classes,
            timeout_seconds=parent.timeout_seconds,
            max_attempts=parent.max_attempts,
            status=StepStatus.QUEUED,
            queued_at=now,
        )
        for index, values in enumerate(combinations)
    )
    step_transition(parent, StepStatus.RUNNING, queued_at=now, started_at=now)
    messages = [message_for(shard, tenant_id=execution.tenant_id) for shard in shards]
    transaction.on_commit(lambda: send_chord(parent.pk, messages))


def steps_create(execution: Execution, manifest: dict[str, Any]) -> None:
    """Create the step rows of a new execution and queue its roots."""
    tasks = manifest["tasks"]
    dependents: dict[str, list[str]] = {task["id"]: [] for task in tasks}
    for task in tasks:
        for need in task.get("needs", []):
            dependents[need].append(task["id"])
    # The plan knows each step's data classes (the task's and its package's).
    classes = {step["id"]: step.get("data_classes", []) for step in (execution.plan or {}).get("steps", [])}
    priorities = step_priorities(execution.plan or {})
    now = timezone.now()
    rows = []
    for sequence, task in enumerate(tasks):
        resource_class = task.get("resource_class", "small")
        matrix = (task.get("strategy") or {}).get("matrix")
        # A plain root is queued as it is written (no second statement); a matrix root is
        # queued with its shards below.
        queued = not matrix and not task.get("needs")
        rows.append(
            StepRun(
                execution=execution,
                step_id=task["id"],
                kind=StepKind.STEP,
                sequence=sequence,
                uses=task["uses"],
                with_template=task.get("with", {}),
                needs=task.get("needs", []),
                dependents=dependents[task["id"]],
                compensate=task.get("compensate"),
                # A list keeps the manifest's order of keys and values; jsonb would sort an object's keys.
                matrix=matrix_shards(task) if matrix else None,
                max_parallel=(task.get("strategy") or {}).get("max_parallel"),
                queue=f"mc.{resource_class}",
                resource_class=resource_class,
                timeout_seconds=task.get("timeout_seconds", 3600),
                max_attempts=task.get("retries", 0) + 1,
                needs_pending=len(task.get("needs", [])),
                data_classes=classes.get(task["id"], task.get("data_classes", [])),
                priority=priorities.get(task["id"], 0),
                status=StepStatus.QUEUED if queued else StepStatus.PENDING,
                queued_at=now if queued else None,
            )
        )
    steps = StepRun.objects.bulk_create(rows)
    _send_on_commit(execution, [step for step in steps if step.status == StepStatus.QUEUED])
    queue_steps(execution, [step for step in steps if step.needs_pending == 0 and step.matrix])


# --- outcomes -------------------------------------------------------------------------------


# The columns bookkeeping reads and writes: never the plan or the inputs, which can be large.
BOOKKEEPING_FIELDS = (
    "id",
    "tenant_id",
    "mode",
    "status",
    "steps_remaining",
    "error",
    "finished_at",
    "canary_release_id",
    "arm",
    "workflow_version_id",  # its receipt names the version
)


def lock_execution(execution_id: Any) -> Execution:
    return Execution.objects.select_for_update().only(*BOOKKEEPING_FIELDS).get(pk=execution_id)


def lock_step(step_pk: int) -> StepRun:
    return StepRun.objects.select_for_update().get(pk=step_pk)


def step_finished(execution: Execution, step: StepRun) -> None:
    """Follow-up of a step (execution and step locked) that just reached a terminal status."""
    if step.kind == StepKind.SHARD:
        return  # the chord's join decides for the whole matrix task
    if step.kind == StepKind.COMPENSATION:
        _compensation_next(execution)
        return
    if step.status == StepStatus.SUCCEEDED and execution.status == ExecutionStatus.RUNNING:
        release_dependents(execution, step)
    elif step.status == StepStatus.FAILED:
        _execution_failing(execution, step)
    _steps_done(execution, 1)


# Decrement each dependent's counter and, for a plain step whose last need this was, move
# it pending -> queued in the same statement (the move steps_transition would make; the
# assertion below keeps the two in step). Matrix tasks stay pending here and are queued
# with their shards by queue_steps.
assert StepStatus.QUEUED in STEP_TRANSITIONS[StepStatus.PENDING]
_RELEASE_SQL = """
UPDATE executions_steprun
SET needs_pending = needs_pending - 1,
    status = CASE WHEN needs_pending = 1 AND status = %s AND matrix IS NULL THEN %s ELSE status END,
    queued_at = CASE WHEN needs_pending = 1 AND status = %s AND matrix IS NULL THEN %s ELSE queued_at END
WHERE execution_id = %s AND kind = %s AND step_id IN ({placeholders})
  AND EXISTS (SELECT 1 FROM executions_execution e WHERE e.id = %s AND e.status = %s)
RETURNING id, needs_pending, status, matrix IS NOT NULL, queue, timeout_seconds, sequence, priority, resource_class
"""


def release_dependents(execution: Execution, step: StepRun) -> None:
    """Count one more need met for each dependent; queue those whose needs are all met.

    One statement decrements the counters, queues the plain steps that reached zero and
    returns what it did: the execution lock serialises it, so only the transaction that
    took a counter to zero queues that step.
    """
    if not step.dependents:
        return
    with connection.cursor() as cursor:
        release_dependents_send(cursor, execution.pk, step)
        dependents_released(execution, cursor.fetchall())


def release_dependents_send(cursor: Any, execution_id: Any, step: StepRun) -> bool:
    """Execute ``release_dependents``'s statement on ``cursor`` (False: the step has no dependents).

    It changes nothing unless the execution is running. Its rows go to ``dependents_released``.
    """
    if not step.dependents:
        return False
    execution_id = Execution._meta.pk.get_db_prep_value(execution_id, connection)  # type: ignore[union-attr]
    now = timezone.now()
    pending, queued = StepStatus.PENDING, StepStatus.QUEUED
    sql = _RELEASE_SQL.format(placeholders=", ".join(["%s"] * len(step.dependents)))
    params = [pending, queued, pending, now, execution_id, StepKind.STEP, *step.dependents]
    cursor.execute(sql, [*params, execution_id, ExecutionStatus.RUNNING])
    return True


def dependents_released(execution: Execution, rows: list[Any]) -> None:
    """Send the dependents the release statement queued (after commit); queue released matrix tasks."""
    rows = sorted(rows, key=lambda row: (row[7], row[6]))  # critical first, then manifest order
    queued = StepStatus.QUEUED
    released = [row for row in rows if row[1] == 0]
    messages = [
        Message(pk, queue, timeout, priority=priority, tenant_id=execution.tenant_id, resource_class=resource_class)
        for pk, _, status, _, queue, timeout, _, priority, resource_class in released
        if status == queued
    ]
    if messages:
        transaction.on_commit(lambda: send_steps(messages))
    matrix = [pk for pk, _, status, is_matrix, *_ in released if is_matrix and status == StepStatus.PENDING]
    if matrix:
        queue_steps(execution, StepRun.objects.filter(pk__in=matrix).order_by("sequence"))


def _execution_failing(execution: Execution, failed: StepRun) -> None:
    """A step failed for good: stop starting steps; settle once running ones finish."""
    if execution.status != ExecutionStatus.RUNNING:
        return
    execution_transition(
        execution,
        ExecutionStatus.FAILING,
        error={"code": "step_failed", "step": failed.step_id, "message": (failed.error or {}).get("message", "")},
    )
    skipped = _stop_not_started(execution, StepStatus.SKIPPED)
    _steps_done(execution, skipped, settle=False)


def _stop_not_started(execution: Execution, to: str) -> int:
    """Move steps and shards that have not started to ``to``; return how many steps (not shards) moved."""
    now = timezone.now()
    steps = StepRun.objects.filter(execution=execution, kind=StepKind.STEP)
    moved = steps_transition(steps, STEP_NOT_STARTED, to, finished_at=now)
    steps_transition(
        StepRun.objects.filter(execution=execution, kind=StepKind.SHARD), STEP_NOT_STARTED, to, finished_at=now
    )
    return moved


def _steps_done(execution: Execution, count: int, *, settle: bool = True) -> None:
    if count:
        execution.steps_remaining -= count
        execution.save(update_fields=["steps_remaining"])
    if settle and execution.steps_remaining <= 0:
        execution_settle(execution)


def execution_settle(execution: Execution) -> None:
    """Every step is finished: succeed, or compensate and then fail or cancel."""
    now = timezone.now()
    if execution.status == ExecutionStatus.RUNNING:
        execution_transition(execution, ExecutionStatus.SUCCEEDED, finished_at=now)
        return
    if execution.status not in (ExecutionStatus.FAILING, ExecutionStatus.CANCELLING):
        return
    completed = (
        StepRun.objects.filter(execution=execution, kind=StepKind.STEP, status=StepStatus.SUCCEEDED)
        .exclude(compensate=None)
        .order_by("-finished_at", "-sequence")
    )
    rows = [
        StepRun(
            execution=execution,
            step_id=step.step_id,
            kind=StepKind.COMPENSATION,
            parent=step,
            sequence=order,
            uses=step.compensate["uses"],
            with_template=step.compensate.get("with", {}),
            needs=[],
            queue=f"mc.{step.compensate.get('resource_class', step.resource_class)}",
            resource_class=step.compensate.get("resource_class", step.resource_class),
            timeout_seconds=step.compensate.get("timeout_seconds", step.timeout_seconds),
            max_attempts=step.compensate.get("retries", 0) + 1,
            data_classes=step.data_classes,  # it undoes what the step did, with the same data
        )
        for order, step in enumerate(completed)
        if step.compensate
    ]
    if not rows:
        execution_transition(execution, _final_status(execution), finished_at=now)
        return
    StepRun.objects.bulk_create(rows)
    execution_transition(execution, ExecutionStatus.COMPENSATING)
    _compensation_next(execution)


def _final_status(execution: Execution) -> str:
    cancelled = (execution.error or {}).get("code") == "cancelled"
    return ExecutionStatus.CANCELLED if cancelled else ExecutionStatus.FAILED


def _compensation_next(execution: Execution) -> None:
    """Queue the next compensation in order, or finish the execution when none is left."""
    if execution.status != ExecutionStatus.COMPENSATING:
        return
    pending = (
        StepRun.objects.select_for_update()
        .filter(execution=execution, kind=StepKind.COMPENSATION)
        .exclude(status__in=STEP_TERMINAL)
        .order_by("sequence")
        .first()
    )
    if pending is None:
        execution_transition(execution, _final_status(execution), finished_at=timezone.now())
    elif pending.status == StepStatus.PENDING:
        queue_steps(execution, [pending])


def shards_join(parent_pk: int) -> None:
    """The chord callback: settle a matrix task from its shard rows, outputs in shard order."""
    with transaction.atomic():
        parent = StepRun.objects.only("execution_id").get(pk=parent_pk)
        execution = lock_execution(parent.execution_id)
        parent = lock_step(parent_pk)
        if parent.status != StepStatus.RUNNING:
            return
        shards = list(StepRun.objects.filter(parent=parent, kind=StepKind.SHARD).order_by("shard_index"))
        if any(shard.status not in STEP_TERMINAL for shard in shards):
            return  # a shard was redelivered; its own completion will join again
        now = timezone.now()
        failed = [shard for shard in shards if shard.status == StepStatus.FAILED]
        if failed:
            error = {
                "code": "shard_failed",
                "message": f"{len(failed)} of {len(shards)} shards failed; first: shard {failed[0].shard_index}: "
                + (failed[0].error or {}).get("message", ""),
                "retryable": False,
            }
            step_transition(parent, StepStatus.FAILED, finished_at=now, error=error)
        elif all(shard.status == StepStatus.SUCCEEDED for shard in shards):
            outputs = merge_shard_outputs([outputs_load(shard) for shard in shards])
            stored = outputs_store(outputs)
            step_transition(
                parent,
                StepStatus.SUCCEEDED,
                finished_at=now,
                outputs=stored.inline,
                outputs_ref=stored.ref,
                output_digest=stored.digest,
            )
        else:
            step_transition(parent, StepStatus.CANCELLED, finished_at=now)
        step_finished(execution, parent)


# --- cancel ---------------------------------------------------------------------------------


def execution_cancel(*, execution: Execution) -> Execution:
    """Stop an execution: steps not finished are cancelled, running ones are terminated.

    Completed steps with ``compensate`` blocks are then compensated in reverse order.
    """
    from mc_project.errors import Conflict

    with transaction.atomic():
        execution = lock_execution(execution.pk)
        if execution.is_terminal or execution.status in (ExecutionStatus.CANCELLING, ExecutionStatus.COMPENSATING):
            raise Conflict(
                f"Execution is {execution.status}; it cannot be cancelled.", code="execution_not_cancellable"
            )
        running = list(
            StepRun.objects.filter(execution=execution, status=StepStatus.RUNNING)
            .exclude(kind=StepKind.COMPENSATION)
            .values_list("pk", "kind", "resource_class")
        )
        execution_transition(
            execution,
            ExecutionStatus.CANCELLING,
            error={"code": "cancelled", "message": "cancelled on request"},
        )
        now = timezone.now()
        cancelled_steps = steps_transition(
            StepRun.objects.filter(execution=execution, kind=StepKind.STEP),
            [*STEP_NOT_STARTED, StepStatus.RUNNING],
            StepStatus.CANCELLED,
            finished_at=now,
        )
        steps_transition(
            StepRun.objects.filter(execution=execution, kind=StepKind.SHARD),
            [*STEP_NOT_STARTED, StepStatus.RUNNING],
            StepStatus.CANCELLED,
            finished_at=now,
        )
        # Shards are left to finish their chord (a revoked chord member never completes it).
        terminate = [f"mc-step-{pk}" for pk, kind, _ in running if kind == StepKind.STEP]
        if terminate:
            # If the broker is down, the steps run to their end and their outcomes are dropped (cancelled).
            after_commit_robust(
                lambda: celery_app.control.revoke(terminate, terminate=True, signal="SIGTERM"), "terminating steps"
            )
        _steps_done(execution, cancelled_steps)
    for resource_class in sorted({resource_class for _, _, resource_class in running}):
        quota_release(execution.tenant_id, resource_class)  # their slots are free: offer them to the line
    execution.refresh_from_db()
    return execution
