"""Running one step on a worker: claim it, render its inputs, run its package, record the outcome.

Claiming and recording are short transactions; the package runs outside any transaction.
A message delivered again (worker lost, broker redelivery) finds the step already
claimed or finished and does nothing twice: outputs are recorded only by the attempt
that holds the claim.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from executions.artifacts import ArtifactStore
from executions.choices import MAX_LOST_ATTEMPTS, ExecutionStatus, StepKind, StepStatus
from executions.expressions import ExpressionError, references, render
from executions.models import Execution, StepRun
from executions.packages.base import InputInvalid, PackageSettings, StepContext, StepFailed
from executions.packages.registry import UnknownPackage, default_registry
from executions.services.dispatch import (
    backoff_delay,
    execution_settle,
    join_if_settled,
    lock_execution,
    lock_step,
    release_dependents,
    step_finished,
)
from executions.services.liveness import liveness_read, same_worker_alive
from executions.services.quotas import (
    SHARD_POLL_S,
    Gate,
    QuotaHeld,
    quota_admits,
    quota_gate,
    quota_hold,
    quota_lock,
    quota_release,
    quota_slot_freed,
)
from executions.services.steplog import PII, StepLog
from executions.transitions import step_start_claimed, step_transition, step_transition_claimed
from mc_project import metrics
from workflows.manifest import canonical_json, sha256_digest

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# The database went away (restart, failover, network): the work is retried, never dropped.
DATABASE_ERRORS = (OperationalError, InterfaceError)

# Steps whose attempt this process is running now: a message for one of them that reaches
# this very process again is a duplicate only if it is listed here (threads and solo pools
# run several tasks in one process; a prefork pool process runs one at a time).
_RUNNING: set[int] = set()


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


@dataclass(frozen=True)
class StoredOutputs:
    inline: dict[str, Any] | None
    ref: str
    digest: str


@dataclass(frozen=True)
class Outcome:
    """What an attempt computed, kept until it is recorded.

    When the database does not answer for long, the outcome travels on in a message of
    its own (``as_message``) and is recorded by whichever worker takes it: the package is
    never run again because the bookkeeping failed.
    """

    attempt: int
    succeeded: bool
    input_digest: str
    log: str
    outputs: dict[str, Any] | None = None
    outputs_ref: str = ""
    output_digest: str = ""
    error: dict[str, Any] | None = None
    retryable: bool = False

    def as_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


class HandedOff(Exception):
    """The rest of the attempt went on in a new message (``retry``, for the task to raise)."""

    def __init__(self, retry: BaseException) -> None:
        super().__init__("handed off")
        self.retry = retry


Handoff = Callable[[dict[str, Any]], BaseException]
"""Sends the rest of an attempt as a new message with these keyword arguments; raises if the broker refuses."""


def _now_iso() -> str:
    return timezone.now().isoformat()


def step_claim(step_pk: int, *, worker: str) -> Claim | None:
    """Start a new attempt of a queued, retrying or lost step; None if there is nothing to run.

    Raises QuotaHeld when the step must wait for a slot of its tenant's quota, and
    Throttled when its matrix task already runs ``max_parallel`` shards.
    """
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
            attempts.append(_attempt_record(step, "lost"))
            lost += 1
        elif step.status not in (StepStatus.QUEUED, StepStatus.RETRYING) or gate is not None:
            return None  # a capped step starts only through its quota gate
        if lost <= MAX_LOST_ATTEMPTS:
            return _attempt_start(step, worker=worker, attempts=attempts, lost=lost)
    # Out of the claim's transaction, so that the execution row is locked before the step's.
    with transaction.atomic():
        _fail(step.pk, attempts, lost, {"code": "worker_lost", "message": f"lost {lost} workers running this step"})
    return None


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


def _attempt_record(step: StepRun, outcome: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of the step's current attempt, closed with ``outcome``."""
    record: dict[str, Any] = {
        "attempt": step.attempt,
        "worker": step.worker,
        "pid": step.worker_pid,
        "started_at": step.attempt_started_at.isoformat() if step.attempt_started_at else None,
        "finished_at": _now_iso(),
        "outcome": outcome,
    }
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
            return step.pk in _RUNNING
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


def outputs_store(outputs: dict[str, Any]) -> StoredOutputs:
    """Digest outputs; keep them inline when small, else in the artifact store by digest."""
    data = canonical_json(outputs)
    digest = sha256_digest(data)
    if len(data) <= settings.MC_OUTPUT_INLINE_LIMIT:
        return StoredOutputs(outputs, "", digest)
    return StoredOutputs(None, ArtifactStore().put(data, content_type="application/json"), digest)


def outputs_load(step: StepRun) -> Any:
    if step.outputs_ref:
        return json.loads(ArtifactStore().get(step.outputs_ref))
    return step.outputs


def _attempt_closed(step: StepRun, outcome: str, error: dict[str, Any] | None = None) -> list[Any]:
    return [*step.attempts, _attempt_record(step, outcome, error)]


def _log_append(step: StepRun, attempt: int, worker: str, log: str) -> str:
    header = f"--- attempt {attempt} on {worker} ---"
    text = "\n".join(part for part in (step.log, header, log) if part)
    limit = settings.MC_STEP_LOG_LIMIT
    return text if len(text) <= limit else "[earlier log truncated]\n" + text[-limit:]


def _holds_claim(step: StepRun, attempt: int) -> bool:
    return step.status == StepStatus.RUNNING and step.attempt == attempt


_DECREMENT_SQL = """
UPDATE executions_execution SET steps_remaining = steps_remaining - 1 WHERE id = %s
RETURNING status, steps_remaining
"""


def step_succeed(step: StepRun, outcome: Outcome) -> bool:
    """Record a successful attempt and release what depends on it; False if the claim was lost.

    ``step`` is the row as the attempt claimed it. A plain step (the hot path) takes one
    transaction of a few statements: count it done on the execution row (which locks it,
    first), record it if this attempt still holds the claim, release its dependents, and
    settle the execution if it was the last.
    """
    fields = {
        "finished_at": timezone.now(),
        "outputs": outcome.outputs,
        "outputs_ref": outcome.outputs_ref,
        "output_digest": outcome.output_digest,
        "input_digest": outcome.input_digest,
        "error": None,
        "attempts": _attempt_closed(step, "succeeded"),
        "log": _log_append(step, outcome.attempt, step.worker, outcome.log),
    }
    with transaction.atomic():
        if step.kind != StepKind.STEP:
            execution = lock_execution(step.execution_id)
            locked = lock_step(step.pk)
            if not _holds_claim(locked, outcome.attempt):
                return False
            step_transition(locked, StepStatus.SUCCEEDED, **fields)
            step_finished(execution, locked)
            return True
        execution_id = Execution._meta.pk.get_db_prep_value(step.execution_id, connection)  # type: ignore[union-attr]
        with connection.cursor() as cursor:
            cursor.execute(_DECREMENT_SQL, [execution_id])
            status, remaining = cursor.fetchone()
        if not step_transition_claimed(step.pk, outcome.attempt, StepStatus.RUNNING, StepStatus.SUCCEEDED, **fields):
            transaction.set_rollback(True)  # the claim was lost (cancelled, or redelivered elsewhere)
            return False
        execution = Execution(pk=step.execution_id, status=status)
        if status == ExecutionStatus.RUNNING:
            release_dependents(execution, step)
        if remaining <= 0:
            execution_settle(lock_execution(step.execution_id))
    return True


def step_attempt_failed(
    claim_step_pk: int, attempt: int, *, error: dict[str, Any], retryable: bool, input_digest: str, log: str
) -> float | None:
    """Record a failed attempt. Returns the backoff delay when another attempt is due, else None."""
    with transaction.atomic():
        execution = lock_execution(StepRun.objects.values_list("execution_id", flat=True).get(pk=claim_step_pk))
        step = lock_step(claim_step_pk)
        if not _holds_claim(step, attempt):
            return None
        attempts = _attempt_closed(step, "failed", error)
        log_text = _log_append(step, attempt, step.worker, log)
        counted = step.attempt - step.lost_attempts
        if retryable and counted < step.max_attempts and execution.status == ExecutionStatus.RUNNING:
            delay = backoff_delay(counted)
            next_at = timezone.now() + timedelta(seconds=delay)
            step_transition(
                step,
                StepStatus.RETRYING,
                error=error,
                attempts=attempts,
                log=log_text,
                input_digest=input_digest,
                next_attempt_at=next_at,
                queued_at=next_at,
            )
            return delay
        step_transition(
            step,
            StepStatus.FAILED,
            finished_at=timezone.now(),
            error=error,
            attempts=attempts,
            log=log_text,
            input_digest=input_digest,
        )
        step_finished(execution, step)
    return None


def crash_error(exc: BaseException) -> dict[str, Any]:
    """The error record of an unexpected exception, keeping its traceback."""
    return {
        "code": "crashed",
        "message": f"{type(exc).__name__}: {exc}",
        "retryable": True,
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }


def _package_settings() -> PackageSettings:
    return PackageSettings(
        http_allowed_hosts=tuple(settings.MC_HTTP_ALLOWED_HOSTS),
        python_allowed_modules=tuple(settings.MC_PYTHON_ALLOWED_MODULES),
    )


def _render(step: StepRun, log: StepLog) -> Any:
    """The step's ``with`` with its expressions evaluated; pii it receives is kept out of ``log``."""
    found = [ref for _, ref in references(step.with_template)]
    if not found:
        return step.with_template
    names = {ref.name for ref in found if ref.kind == "steps"}
    inputs = {}
    if any(ref.kind == "inputs" for ref in found):
        inputs = Execution.objects.values_list("inputs", flat=True).get(pk=step.execution_id)
    outputs = {}
    if names:
        rows = StepRun.objects.filter(
            execution_id=step.execution_id, kind=StepKind.STEP, step_id__in=names, status=StepStatus.SUCCEEDED
        )
        for row in rows:
            outputs[row.step_id] = outputs_load(row)
            if PII in row.data_classes:
                log.redact(outputs[row.step_id])
    matrix = step.matrix if step.kind == StepKind.SHARD else None
    return render(step.with_template, inputs=inputs, steps=outputs, matrix=matrix)


def _failure(exc: BaseException, timeout: int) -> tuple[dict[str, Any], bool]:
    """The error record of a failed attempt and whether another attempt may help."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"code": "timeout", "message": f"timed out after {timeout} s", "retryable": True}, True
    if isinstance(exc, InputInvalid):
        details = exc.details or []
        return {"code": "input_invalid", "message": exc.message, "details": details, "retryable": False}, False
    if isinstance(exc, StepFailed):
        error = {"code": "step_failed", "message": exc.message, "retryable": exc.retryable}
        if exc.details:
            error["details"] = exc.details
        return error, exc.retryable
    if isinstance(exc, ExpressionError):
        return {"code": "expression_error", "message": str(exc), "retryable": False}, False
    if isinstance(exc, UnknownPackage):
        return {"code": "unknown_package", "message": str(exc), "retryable": False}, False
    return crash_error(exc), True


def step_outcome_record(step: StepRun, outcome: Outcome) -> float | None:
    """Record what an attempt computed; the delay before the next attempt, or None."""
    if outcome.succeeded:
        step_succeed(step, outcome)
        return None
    return step_attempt_failed(
        step.pk,
        outcome.attempt,
        error=outcome.error or {},
        retryable=outcome.retryable,
        input_digest=outcome.input_digest,
        log=outcome.log,
    )


def step_execute(
    step_pk: int,
    *,
    worker: str,
    attempt: int | None = None,
    outcome: dict[str, Any] | None = None,
    handoff: Handoff | None = None,
) -> float | None:
    """Run one attempt of a step. Returns the delay before the next attempt, or None when done.

    A message carries only the step, or (when an attempt was handed on because the
    database did not answer) the attempt it continues and, once the package has run, its
    outcome to record. Raises HandedOff when this attempt goes on in a new message.
    """
    if outcome is not None:
        recorded = Outcome.from_message(outcome)
        step = StepRun.objects.filter(pk=step_pk).first()
        if step is None or not _holds_claim(step, recorded.attempt):
            return None  # recorded already, or cancelled meanwhile
        delay = _until_recorded(
            step_outcome_record,
            step,
            recorded,
            handoff=handoff,
            resume=lambda: {"attempt": recorded.attempt, "outcome": outcome},
        )
        quota_slot_freed(step)
        return delay
    try:
        claim = step_claim(step_pk, worker=worker) if attempt is None else step_resume(step_pk, attempt, worker=worker)
    except Throttled:
        return Throttled.delay
    except QuotaHeld as held:
        return held.delay
    if claim is None:
        return None
    metrics.root_step_started(claim.step)
    _RUNNING.add(step_pk)
    handed_off = False
    try:
        return _attempt_run(claim, handoff)
    except HandedOff:
        handed_off = True
        raise
    finally:
        _RUNNING.discard(step_pk)
        metrics.step_attempt_ended(claim.step)
        if not handed_off:
            quota_slot_freed(claim.step, claim.tenant_id)


def step_resume(step_pk: int, attempt: int, *, worker: str) -> Claim | None:
    """Go on with attempt ``attempt`` (handed on before its package ran) on this worker; None if it moved on."""
    moved = StepRun.objects.filter(pk=step_pk, status=StepStatus.RUNNING, attempt=attempt).update(
        worker=worker, worker_pid=os.getpid()
    )
    if not moved:
        return None
    step = StepRun.objects.get(pk=step_pk)
    return Claim(step=step, attempt=attempt)


def _attempt_run(claim: Claim, handoff: Handoff | None) -> float | None:
    """Run the package of a claimed attempt and record its outcome; the delay before a retry, or None."""
    step = claim.step
    log = StepLog(settings.MC_STEP_LOG_LIMIT)
    input_digest = ""
    pii = PII in step.data_classes
    try:
        # Reading the inputs and upstream outputs needs the database: wait for it, the package has not run.
        with_ = _until_recorded(_render, step, log, handoff=handoff, resume=lambda: {"attempt": claim.attempt})
        if pii:
            log.redact_rendered(step.with_template, with_)
        input_digest = sha256_digest(canonical_json(with_))
        package = default_registry().resolve(step.uses)
        problems = package.check_input(with_)
        if problems:
            details = [{"path": "/with" + problem.path, "message": problem.message} for problem in problems]
            raise InputInvalid(
                f"invalid inputs for {step.uses}: {details[0]['path']} {details[0]['message']}", details=details
            )
        context = StepContext(
            execution_id=str(step.execution_id),
            step_id=step.step_id,
            attempt=claim.attempt,
            resource_class=step.resource_class,
            timeout_seconds=step.timeout_seconds,
            log=log.write,
            artifacts=ArtifactStore(),
            settings=_package_settings(),
        )
        outputs = package.run(context, with_)
        if not isinstance(outputs, dict):
            raise StepFailed(f"{step.uses} returned {type(outputs).__name__}, not an object", retryable=False)
        if pii:
            log.redact(outputs)
        outcome = _succeeded(claim.attempt, outputs, input_digest, log)
    except HandedOff:
        raise
    except Exception as exc:
        outcome = _failed(claim.attempt, exc, step.timeout_seconds, input_digest, log)
    return _until_recorded(
        step_outcome_record,
        step,
        outcome,
        handoff=handoff,
        resume=lambda: {"attempt": claim.attempt, "outcome": outcome.as_message()},
    )


def _succeeded(attempt: int, outputs: dict[str, Any], input_digest: str, log: StepLog) -> Outcome:
    """The outcome of a package that returned ``outputs``, stored (a failure if they cannot be)."""
    try:
        stored = outputs_store(outputs)
    except (TypeError, ValueError) as exc:  # outputs that are not plain JSON
        error = {"code": "invalid_outputs", "message": f"outputs are not JSON: {exc}", "retryable": False}
        return Outcome(attempt, False, input_digest, log.text(), error=error, retryable=False)
    except Exception as exc:  # the artifact store failed: another attempt may store them
        return Outcome(attempt, False, input_digest, log.text(), error=crash_error(exc), retryable=True)
    return Outcome(
        attempt,
        True,
        input_digest,
        log.text(),
        outputs=stored.inline,
        outputs_ref=stored.ref,
        output_digest=stored.digest,
    )


def _failed(attempt: int, exc: BaseException, timeout: int, input_digest: str, log: StepLog) -> Outcome:
    error, retryable = _failure(exc, timeout)
    for key in ("message", "traceback"):  # an error may quote the pii it choked on
        if isinstance(error.get(key), str):
            error[key] = log.scrub(error[key])
    return Outcome(attempt, False, input_digest, log.text(), error=error, retryable=retryable)


def _until_recorded(
    work: Callable[..., _T], *args: Any, handoff: Handoff | None, resume: Callable[[], dict[str, Any]]
) -> _T:
    """Run ``work`` (bookkeeping) until the database answers; the attempt's own result is never dropped.

    - The database went away: try again with a growing pause. After
      ``MC_RECORD_RETRY_INLINE`` seconds (or when the soft time limit strikes) the rest of
      the attempt goes on in a new message carrying ``resume()`` (HandedOff), which frees this
      worker and survives its loss; while the broker refuses that too, keep trying here.
    - The soft time limit struck in the middle (the package finished just as it fired):
      the interrupted transaction was rolled back, so run it again. The limit fires once
      per attempt.
    """
    started = time.monotonic()
    pause = 0.2
    urgent = False
    while True:
        try:
            return work(*args)
        except SoftTimeLimitExceeded:
            logger.info("soft time limit struck during bookkeeping; doing it again")
            urgent = True
            continue
        except DATABASE_ERRORS as exc:
            logger.warning("database unavailable during bookkeeping (%s); trying again", type(exc).__name__)
            _drop_broken_connection()
        if handoff is not None and (urgent or time.monotonic() - started >= settings.MC_RECORD_RETRY_INLINE):
            try:
                raise HandedOff(handoff(resume()))
            except HandedOff:
                raise
            except Exception:
                logger.warning("could not hand the attempt on (broker unavailable); keeping it here", exc_info=True)
        try:
            time.sleep(pause)
        except SoftTimeLimitExceeded:
            urgent = True
        pause = min(pause * 2, 5.0)


def _drop_broken_connection() -> None:
    """Close the connection that failed (and leave any atomic block's state alone)."""
    with contextlib.suppress(*DATABASE_ERRORS):
        connection.close()


def step_hard_timeout(step_pk: int, timeout: int) -> float | None:
    """The worker killed an attempt at its hard time limit: record it as a timeout."""
    step = StepRun.objects.filter(pk=step_pk).first()
    if step is None or step.status != StepStatus.RUNNING:
        return None
    error = {"code": "timeout", "message": f"killed at the hard time limit after {timeout} s", "retryable": True}
    # A shard cannot be sent again into its chord after the chord counted it as failed.
    retryable = step.kind != StepKind.SHARD
    delay = step_attempt_failed(
        step.pk,
        step.attempt,
        error=error,
        retryable=retryable,
        input_digest=step.input_digest,
        log="",
    )
    if step.kind == StepKind.SHARD and step.parent_id is not None:
        with transaction.atomic():
            join_if_settled(step.parent_id)
    quota_slot_freed(step)
    return delay
