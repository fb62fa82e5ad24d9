"""The one place each status changes: legal transitions only.

The ORM functions save with ``update_fields``; the two hot-path ones (claiming a step,
recording its outcome) are single SQL statements with the same checks. The one other
status write is the pending -> queued move inside ``dispatch.release_dependents``, made
in the statement that counts a dependent's needs (asserted legal there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from executions.choices import EXECUTION_TRANSITIONS, STEP_TRANSITIONS, ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.signals import execution_finished

# The final statuses of a run (a dry run is born ``planned`` and never moves).
EXECUTION_FINISHED = frozenset({ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


@dataclass(frozen=True)
class QuotaCheck:
    """Start a step only within its tenant's cap for its class, behind the steps held before it."""

    tenant_id: Any
    resource_class: str
    held_since: datetime | None
    cap: int


class IllegalTransition(RuntimeError):
    """A bug: code asked for a status change the transition table forbids."""


def execution_transition(execution: Execution, to: str, **fields: Any) -> Execution:
    """Move ``execution`` (a row locked by the caller) to ``to``, setting ``fields`` too."""
    if to not in EXECUTION_TRANSITIONS[execution.status]:
        raise IllegalTransition(f"execution {execution.pk}: {execution.status} -> {to}")
    execution.status = to
    for name, value in fields.items():
        setattr(execution, name, value)
    execution.save(update_fields=["status", *fields])
    if to in EXECUTION_FINISHED:
        execution_finished.send(sender=Execution, execution=execution)
    return execution


def step_transition(step: StepRun, to: str, **fields: Any) -> StepRun:
    """Move ``step`` (a row locked by the caller) to ``to``, setting ``fields`` too."""
    if to not in STEP_TRANSITIONS[step.status]:
        raise IllegalTransition(f"step {step.step_id} of {step.execution_id}: {step.status} -> {to}")
    step.status = to
    for name, value in fields.items():
        setattr(step, name, value)
    step.save(update_fields=["status", *fields])
    return step


def steps_transition(steps: QuerySet[StepRun], from_statuses: Iterable[str], to: str, **fields: Any) -> int:
    """Move every step of ``steps`` that is in one of ``from_statuses`` to ``to``; return how many.

    A conditional UPDATE, so a step that moved on concurrently is left alone.
    """
    sources = list(from_statuses)
    for source in sources:
        if to not in STEP_TRANSITIONS[source]:
            raise IllegalTransition(f"steps: {source} -> {to}")
    return steps.filter(status__in=sources).update(status=to, **fields)


def step_transition_claimed_send(cursor: Any, step_pk: int, attempt: int, frm: str, to: str, **fields: Any) -> None:
    """Move one step from ``frm`` to ``to`` if attempt ``attempt`` still holds it: execute the statement on ``cursor``.

    The hot path of every finished step: the same conditional UPDATE as ``steps_transition``
    without building an ORM query (fields are prepared by their model fields, so JSON and
    datetimes are stored exactly as the ORM stores them). It returns one row (the id) if
    the step moved, read with ``fetchone``, so that in a pipeline it can be read later.
    """
    if to not in STEP_TRANSITIONS[frm]:
        raise IllegalTransition(f"step {step_pk}: {frm} -> {to}")
    model_fields = [StepRun._meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{field.column} = %s" for field in model_fields)  # type: ignore[union-attr]
    values = [field.get_db_prep_save(fields[field.name], connection) for field in model_fields]  # type: ignore[union-attr]
    sql = (
        f"UPDATE {StepRun._meta.db_table} SET status = %s, {assignments} "  # noqa: S608 - column names from the model, values bound
        "WHERE id = %s AND status = %s AND attempt = %s RETURNING id"
    )
    cursor.execute(sql, [to, *values, step_pk, frm, attempt])


assert StepStatus.RUNNING in STEP_TRANSITIONS[StepStatus.QUEUED] & STEP_TRANSITIONS[StepStatus.RETRYING]
_START_SQL = """
UPDATE executions_steprun
SET status = %s, attempt = attempt + 1, worker = %s, worker_pid = %s,
    started_at = COALESCE(started_at, %s), attempt_started_at = %s, next_attempt_at = NULL,
    quota_waited_ms = %s, quota_held_since = NULL, quota_released_at = NULL
WHERE id = %s AND status IN (%s, %s) AND max_parallel IS NULL{unheld}{condition}
RETURNING {columns}
"""
# The quota condition of a capped step: the tenant's running steps of its class (a matrix
# task's own row holds no slot) plus the steps held in line before it leave a slot free.
_WITHIN_QUOTA_SQL = """
  AND (
    SELECT count(*) FROM executions_steprun r JOIN executions_execution e ON e.id = r.execution_id
    WHERE e.tenant_id = %s AND r.resource_class = %s AND r.status = 'running'
      AND NOT (r.kind = 'step' AND r.matrix IS NOT NULL)
  ) + (
    SELECT count(*) FROM executions_steprun h JOIN executions_execution e ON e.id = h.execution_id
    WHERE e.tenant_id = %s AND h.resource_class = %s AND h.status IN ('queued', 'retrying')
      AND h.quota_held_since IS NOT NULL AND h.id <> %s
      AND (%s::timestamptz IS NULL OR h.quota_held_since < %s OR (h.quota_held_since = %s AND h.id < %s))
  ) < %s"""


def waited_ms(held_since: datetime, now: datetime) -> int:
    """Milliseconds a step waited in line for a quota slot, from ``held_since`` to ``now``."""
    return max(0, int((now - held_since).total_seconds() * 1000))


_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_OF_TENANT_SQL = """
  AND EXISTS (SELECT 1 FROM executions_execution t WHERE t.id = executions_steprun.execution_id AND t.tenant_id = %s)"""


def _row_reader() -> tuple[list[str], Any, Any]:
    """Column names, and the ORM's converters for them, to build StepRun rows from a raw cursor."""
    fields = StepRun._meta.concrete_fields
    compiler = StepRun.objects.none().query.get_compiler(connection=connection)
    converters = compiler.get_converters([field.get_col(StepRun._meta.db_table) for field in fields])
    return [field.attname for field in fields], compiler, converters


def step_start_claimed(
    step_pk: int,
    *,
    worker: str,
    pid: int,
    quota: QuotaCheck | None = None,
    lock_key: str | None = None,
    tenant_id: Any = None,
) -> StepRun | None:
    """Claim a queued or retrying step for a new attempt in one statement; the row, or None.

    The hot path of every step start (queued|retrying -> running). Throttled shards
    (``max_parallel``) and anything else take the locking path in the runner. With
    ``quota``, the step starts only if its tenant has a slot free for it (None otherwise);
    the caller holds the quota lock, so the counts cannot change under it.

    With ``lock_key`` (PostgreSQL, outside a transaction) the quota lock is taken by the
    same round trip: ``SELECT pg_advisory_xact_lock(..); UPDATE ..`` sent as one simple
    query runs as one transaction, and the UPDATE's snapshot is taken after the lock. Only
    a step not held in line starts this way (a held one needs its place, ``held_since``).
    With ``tenant_id`` the step starts only if its execution belongs to that tenant.
    """
    names, compiler, converters = _row_reader()
    columns = ", ".join(str(field.column) for field in StepRun._meta.concrete_fields)
    now = timezone.now()
    params: list[Any] = [
        StepStatus.RUNNING,
        worker,
        pid,
        now,
        now,
        None if quota is None or quota.held_since is None else waited_ms(quota.held_since, now),
        step_pk,
        StepStatus.QUEUED,
        StepStatus.RETRYING,
    ]
    unheld = ""
    if lock_key is not None and quota is not None:
        unheld += " AND quota_held_since IS NULL AND resource_class = %s"
        params.append(quota.resource_class)
    if tenant_id is not None:
        unheld += _OF_TENANT_SQL
        params.append(tenant_id)
    condition = ""
    if quota is not None:
        condition = _WITHIN_QUOTA_SQL
        held = quota.held_since
        params += [quota.tenant_id, quota.resource_class, quota.tenant_id, quota.resource_class, step_pk]
        params += [held, held, held, step_pk, quota.cap]
    sql = _START_SQL.format(columns=columns, unheld=unheld, condition=condition)
    if lock_key is not None:
        sql = f"{_LOCK_SQL}; {sql}"
        params = [lock_key, *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if lock_key is not None:
            cursor.nextset()
        rows = cursor.fetchall()
    if not rows:
        return None
    (values,) = compiler.apply_converters(rows, converters) if converters else rows
    return StepRun.from_db(connection.alias, names, values)
