"""Recording what an attempt computed, and waiting for the database to do it.

Outputs are recorded only by the attempt that holds the claim. An outcome is never dropped
because the database failed: it is recorded when the database is back, or handed on in a
message of its own (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from executions.choices import ExecutionStatus, StepKind, StepStatus
from executions.models import Execution, StepRun
from executions.services.claims import attempt_record
from executions.services.dispatch import (
    backoff_delay,
    dependents_released,
    execution_settle,
    lock_execution,
    lock_step,
    release_dependents_send,
    step_finished,
)
from executions.transitions import step_transition, step_transition_claimed_send

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# The database went away (restart, failover, network): the work is retried, never dropped.
DATABASE_ERRORS = (OperationalError, InterfaceError)


def crash_error(exc: BaseException) -> dict[str, Any]:
    """The error record of an unexpected exception, keeping its traceback."""
    return {
        "code": "crashed",
        "message": f"{type(exc).__name__}: {exc}",
        "retryable": True,
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }


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


def _attempt_closed(step: StepRun, outcome: str, error: dict[str, Any] | None = None) -> list[Any]:
    return [*step.attempts, attempt_record(step, outcome, error)]


def _log_append(step: StepRun, attempt: int, worker: str, log: str) -> str:
    header = f"--- attempt {attempt} on {worker} ---"
    text = "\n".join(part for part in (step.log, header, log) if part)
    limit = settings.MC_STEP_LOG_LIMIT
    return text if len(text) <= limit else "[earlier log truncated]\n" + text[-limit:]


@contextlib.contextmanager
def _pipeline() -> Iterator[None]:
    """Statements executed inside go out together (psycopg's pipeline mode on PostgreSQL).

    A result is read when a cursor fetches it; reading waits for the statements before it.
    Errors raised when the pipeline ends are Django's, as a cursor's are.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.wrap_database_errors:
        connection.ensure_connection()
        with connection.connection.pipeline():
            yield


def holds_claim(step: StepRun, attempt: int) -> bool:
    return step.status == StepStatus.RUNNING and step.attempt == attempt


_DECREMENT_SQL = """
UPDATE executions_execution SET steps_remaining = steps_remaining - 1 WHERE id = %s
RETURNING status, steps_remaining, tenant_id
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
            if not holds_claim(locked, outcome.attempt):
                return False
            step_transition(locked, StepStatus.SUCCEEDED, **fields)
            step_finished(execution, locked)
            return True
        execution_id = Execution._meta.pk.get_db_prep_value(step.execution_id, connection)  # type: ignore[union-attr]
        # Three statements in one round trip (with the BEGIN): count down (locking the
        # execution first), record if the claim holds, release the dependents if the run
        # still runs. A lost claim rolls all three back.
        with _pipeline(), connection.cursor() as count, connection.cursor() as record, connection.cursor() as release:
            count.execute(_DECREMENT_SQL, [execution_id])
            step_transition_claimed_send(
                record, step.pk, outcome.attempt, StepStatus.RUNNING, StepStatus.SUCCEEDED, **fields
            )
            releasing = release_dependents_send(release, step.execution_id, step)
            status, remaining, tenant_id = count.fetchone()
            claimed = record.fetchone() is not None
            released = release.fetchall() if releasing else []
        if not claimed:
            transaction.set_rollback(True)  # the claim was lost (cancelled, or redelivered elsewhere)
            return False
        execution = Execution(pk=step.execution_id, status=status, tenant_id=tenant_id)
        dependents_released(execution, released)
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
        if not holds_claim(step, attempt):
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


def until_recorded(
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
