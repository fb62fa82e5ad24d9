"""Claiming a step for a new attempt: one attempt runs, a duplicate message is recognised and dropped.

A message for a queued or retrying step starts the next attempt with a conditional update
(within the tenant's quota). A message for a step marked running starts a new attempt only
if the last one is lost, judged on evidence (executions/services/liveness.py).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from executions.choices import MAX_LOST_ATTEMPTS, StepKind, StepStatus
from executions.models import StepRun
from executions.services.dispatch import lock_execution, lock_step, step_finished
from executions.services.liveness import liveness_read, same_worker_alive
from executions.services.messages import join_if_settled
from executions.services.quotas import (
    SHARD_POLL_S,
    Gate,
    QuotaHeld,
    quota_admits,
    quota_gate,
    quota_hold,
    quota_lock,
    quota_lock_key,
    quota_release,
)
from executions.transitions import QuotaCheck, step_start_claimed, step_transition, waited_ms
from policy.dispatch import quota_rules

# Steps whose attempt this process is running now: a message for one of them that reaches
# this very process again is a duplicate only if it is listed here (threads and solo pools
# run several tasks in one process; a prefork pool process runs one at a time).
RUNNING_HERE: set[int] = set()


@dataclass(frozen=True)
class Claim:
    """A step this worker now runs, and the number of its attempt."""

    step: StepRun
    attempt: int
    tenant_id: Any = None
    """Known when the step started through its tenant's quota gate."""


class Throttled(Exception):
    """A shard of a matrix task with ``max_parallel`` found every slot taken: try again shortly."""

    delay = 0.5


def _now_iso() -> str:
    return timezone.now().isoformat()


def step_claim(step_pk: int, *, worker: str, tenant: Any = None, resource_class: str = "") -> Claim | None:
    """Start a new attempt of a queued, retrying or lost step; None if there is nothing to run.

    Raises QuotaHeld when the step must wait for a slot of its tenant's quota, and
    Throttled when its matrix task already runs ``max_parallel`` shards. A message that
    names the step's tenant and class (``Message.kwargs``) lets a step that waits in no
    line start in one round trip; anything else takes the gate below.
    """
    tenant_id = _tenant_hint(tenant)
    if tenant_id and resource_class and connection.vendor == "postgresql" and not connection.in_atomic_block:
        claim = _claim_in_one_round_trip(step_pk, worker=worker, tenant_id=tenant_id, resource_class=resource_class)
        if claim is not None:
            return claim
    gate = quota_gate(step_pk)
    if gate is None:
        step = step_start_claimed(step_pk, worker=worker, pid=os.getpid())
        if step is not None:
            return Claim(step=step, attempt=step.attempt)
    elif (claim := _claim_within_quota(gate, worker=worker)) is not None:
        return claim
    with transaction.atomic():
        _wait_for_shard_slot(step_pk)
        step = StepRun.objects.select_for_update().filter(pk=step_pk).first()
        if step is None:
            return None
        attempts = list(step.attempts)
        lost = step.lost_attempts
        if step.status == StepStatus.RUNNING:
            if _attempt_alive(step, observer=worker):
                return None  # a duplicate delivery (e.g. a visibility timeout shorter than the step)
            # Delivered again while marked running: the worker of the last attempt was lost.
            attempts.append(attempt_record(step, "lost"))
            lost += 1
        elif step.status not in (StepStatus.QUEUED, StepStatus.RETRYING) or gate is not None:
            return None  # a capped step starts only through its quota gate
        if lost <= MAX_LOST_ATTEMPTS:
            return _attempt_start(step, worker=worker, attempts=attempts, lost=lost)
    # Out of the claim's transaction, so that the execution row is locked before the step's.
    with transaction.atomic():
        _fail(step.pk, attempts, lost, {"code": "worker_lost", "message": f"lost {lost} workers running this step"})
    return None


def _tenant_hint(tenant: Any) -> uuid.UUID | None:
    """A message's tenant hint as the tenant's pk (as rows hold it, so caches keyed on it are shared)."""
    try:
        return uuid.UUID(str(tenant)) if tenant else None
    except ValueError:
        return None


def _claim_in_one_round_trip(step_pk: int, *, worker: str, tenant_id: Any, resource_class: str) -> Claim | None:
    """The hot path of a step start: one statement, or two sent together under the quota lock.

    None when the step did not start this way (held in line, no slot, throttled, running,
    gone): the caller's gate decides then, as it would have without the message's hints.
    """
    cap = quota_rules(tenant_id).max_concurrent.get(resource_class)
    if cap is None:
        step = step_start_claimed(step_pk, worker=worker, pid=os.getpid(), tenant_id=tenant_id)
    else:
        step = step_start_claimed(
            step_pk,
            worker=worker,
            pid=os.getpid(),
            quota=QuotaCheck(tenant_id, resource_class, None, cap),
            lock_key=quota_lock_key(tenant_id, resource_class),
            tenant_id=tenant_id,
        )
    return None if step is None else Claim(step=step, attempt=step.attempt, tenant_id=tenant_id)


def _attempt_start(step: StepRun, *, worker: str, attempts: list[Any], lost: int) -> Claim:
    """Move a locked step to running for a new attempt."""
    now = timezone.now()
    step_transition(
        step,
        StepStatus.RUNNING,
        attempt=step.attempt + 1,
        attempts=attempts,
        lost_attempts=lost,
        worker=worker,
        worker_pid=os.getpid(),
        started_at=step.started_at or now,
        attempt_started_at=now,
        next_attempt_at=None,
        quota_waited_ms=None if step.quota_held_since is None else waited_ms(step.quota_held_since, now),
        quota_held_since=None,
        quota_released_at=None,
    )
    return Claim(step=step, attempt=step.attempt)


def _claim_within_quota(gate: Gate, *, worker: str) -> Claim | None:
    """Claim a capped step if its tenant has a slot free for it, else put it in line (QuotaHeld).

    On PostgreSQL a step within the cap starts in one conditional UPDATE under the quota
    lock. Beyond the cap (and for throttled shards, and on SQLite) the slots are counted
    and, if need be, the quotas pack decides. None when the step moved on meanwhile (the
    caller's locking path sorts that out).
    """
    with transaction.atomic():
        quota_lock(gate.tenant_id, gate.resource_class, gate.step_pk)
        if connection.vendor == "postgresql" and not gate.max_parallel:
            started = step_start_claimed(gate.step_pk, worker=worker, pid=os.getpid(), quota=gate.check)
            if started is not None:
                return Claim(step=started, attempt=started.attempt, tenant_id=gate.tenant_id)
        admitted, slots = quota_admits(gate)
        if admitted:
            if not gate.max_parallel:
                started = step_start_claimed(gate.step_pk, worker=worker, pid=os.getpid())
                return None if started is None else Claim(step=started, attempt=started.attempt)
            _wait_for_shard_slot(gate.step_pk)
            locked = lock_step(gate.step_pk)
            if locked.status not in (StepStatus.QUEUED, StepStatus.RETRYING):
                return None
            return _attempt_start(locked, worker=worker, attempts=list(locked.attempts), lost=locked.lost_attempts)
        if not quota_hold(gate):
            return None
    if slots.running < gate.cap:  # room, but others are ahead: make sure the head is offered it
        quota_release(gate.tenant_id, gate.resource_class)
    raise QuotaHeld(SHARD_POLL_S if gate.kind == StepKind.SHARD else None)


def attempt_record(step: StepRun, outcome: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of the step's current attempt, closed with ``outcome``."""
    record: dict[str, Any] = {
        "attempt": step.attempt,
        "worker": step.worker,
        "pid": step.worker_pid,
        "started_at": step.attempt_started_at.isoformat() if step.attempt_started_at else None,
        "finished_at": _now_iso(),
        "outcome": outcome,
    }
    if step.quota_waited_ms is not None:
        record["quota_waited_ms"] = step.quota_waited_ms
    if error:
        record["error"] = error.get("message", "")
    return record


def _attempt_alive(step: StepRun, *, observer: str) -> bool:
    """Whether the step's last attempt still runs, judged on evidence (docs/reliability.md).

    Past its hard time limit it does not: the worker would have stopped it. On this very
    process, only if this process runs it now; on another pool process of this worker, if
    that process lives; on another worker, if that worker's heartbeats say so
    (``liveness.Liveness.holds``). A message that finds a live attempt is a duplicate.
    """
    started = step.attempt_started_at
    limit = step.timeout_seconds + settings.MC_STEP_TIMEOUT_GRACE
    if not step.worker or started is None or timezone.now() - started > timedelta(seconds=limit):
        return False
    if step.worker == observer:
        if step.worker_pid == os.getpid():
            return step.pk in RUNNING_HERE
        if not same_worker_alive(step.worker_pid):
            return False  # its pool process died (killed, out of memory)
    return liveness_read(observer=observer).holds(step)


def _wait_for_shard_slot(step_pk: int) -> None:
    """Raise Throttled if ``step_pk`` is a shard whose matrix task already runs ``max_parallel`` shards.

    The matrix task's row is locked while counting, so two shards cannot take the last slot.
    """
    shard = (
        StepRun.objects.filter(pk=step_pk, kind=StepKind.SHARD).values("parent_id", "max_parallel", "status").first()
    )
    if shard is None or not shard["max_parallel"] or shard["status"] not in (StepStatus.QUEUED, StepStatus.RETRYING):
        return
    StepRun.objects.select_for_update().filter(pk=shard["parent_id"]).values_list("pk").get()
    running = StepRun.objects.filter(
        parent_id=shard["parent_id"], kind=StepKind.SHARD, status=StepStatus.RUNNING
    ).count()
    if running >= shard["max_parallel"]:
        raise Throttled


def _fail(step_pk: int, attempts: list[Any], lost: int, error: dict[str, Any]) -> None:
    """Fail a running step for good (call inside a transaction; locks the execution first)."""
    execution = lock_execution(StepRun.objects.values_list("execution_id", flat=True).get(pk=step_pk))
    locked = lock_step(step_pk)
    if locked.status != StepStatus.RUNNING:
        return
    step_transition(
        locked, StepStatus.FAILED, finished_at=timezone.now(), error=error, attempts=attempts, lost_attempts=lost
    )
    step_finished(execution, locked)
    if locked.kind == StepKind.SHARD and locked.parent_id is not None:
        join_if_settled(locked.parent_id)


def step_resume(step_pk: int, attempt: int, *, worker: str) -> Claim | None:
    """Go on with attempt ``attempt`` (handed on before its package ran) on this worker; None if it moved on."""
    moved = StepRun.objects.filter(pk=step_pk, status=StepStatus.RUNNING, attempt=attempt).update(
        worker=worker, worker_pid=os.getpid()
    )
    if not moved:
        return None
    step = StepRun.objects.get(pk=step_pk)
    return Claim(step=step, attempt=attempt)
