"""Reads of executions, scoped to the caller's tenant."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import Count, Q, QuerySet

from executions.choices import StepKind, StepStatus
from executions.converters import MIN_PREFIX
from executions.models import Execution, StepRun
from mc_project.errors import Conflict, NotFound
from mc_project.tenancy.selectors import tenant_for_user

_HEX = re.compile(r"[0-9a-f]+")


def execution_list(*, user: Any) -> QuerySet[Execution]:
    return (
        Execution.objects.filter(tenant=tenant_for_user(user))
        .select_related("workflow", "workflow_version", "created_by")
        .defer("plan", "workflow_version__manifest", "workflow_version__canonical")
    )


#: How many candidates an ambiguous prefix lists.
_CANDIDATES_SHOWN = 10


def _execution_by_prefix(executions: QuerySet[Execution], prefix: str) -> Execution | None:
    """The one execution whose id starts with the hex ``prefix``; 409 listing them when several do.

    A range on the primary key (``prefix000...`` to ``prefixfff...``), so the index answers.
    """
    low = uuid.UUID(prefix.ljust(32, "0"))
    high = uuid.UUID(prefix.ljust(32, "f"))
    found = list(executions.filter(pk__gte=low, pk__lte=high).order_by("-created_at")[: _CANDIDATES_SHOWN + 1])
    if len(found) > 1:
        shown = found[:_CANDIDATES_SHOWN]
        raise Conflict(
            f"{prefix} names {len(found) if len(found) <= _CANDIDATES_SHOWN else 'more than 10'} executions; "
            "give more characters of the id.",
            code="ambiguous_id",
            details=[
                {"path": "/id", "message": f"{e.pk} {e.workflow.name}@{e.workflow_version.version} {e.status}"}
                for e in shown
            ],
        )
    return found[0] if found else None


def execution_get(*, user: Any, execution_id: uuid.UUID | str) -> Execution:
    """The caller's execution by its id, or by a unique prefix of at least 8 hex digits (as git does)."""
    executions = execution_list(user=user)
    execution: Execution | None = None
    if isinstance(execution_id, uuid.UUID):
        execution = executions.filter(pk=execution_id).first()
    else:
        digits = str(execution_id).replace("-", "").lower()
        if len(digits) == 32 and _HEX.fullmatch(digits):
            execution = executions.filter(pk=uuid.UUID(digits)).first()
        elif MIN_PREFIX <= len(digits) < 32 and _HEX.fullmatch(digits):
            execution = _execution_by_prefix(executions, digits)
    if execution is None:
        raise NotFound("No such execution.")
    return execution


def step_list(*, execution: Execution, kind: str | None = None) -> QuerySet[StepRun]:
    steps = StepRun.objects.filter(execution=execution).select_related("parent")
    if kind:
        steps = steps.filter(kind=kind)
    return steps.order_by("kind", "sequence", "shard_index")


def step_get(*, execution: Execution, step_id: str, kind: str = StepKind.STEP, shard: int = 0) -> StepRun:
    step = StepRun.objects.filter(execution=execution, step_id=step_id, kind=kind, shard_index=shard).first()
    if step is None:
        raise NotFound(f"Execution has no step {step_id!r}.", code="no_such_step")
    return step


def execution_progress(*, execution: Execution) -> dict[str, Any]:
    """Counts of steps by status, the running ones, and elapsed time: what a CLI polls."""
    steps = StepRun.objects.filter(execution=execution, kind=StepKind.STEP)
    counts = steps.aggregate(
        total=Count("pk"),
        **{status: Count("pk", filter=Q(status=status)) for status in StepStatus.values},
    )
    running = list(steps.filter(status=StepStatus.RUNNING).order_by("sequence").values_list("step_id", flat=True)[:50])
    end = execution.finished_at
    elapsed = None
    if execution.started_at:
        from django.utils import timezone

        elapsed = round(((end or timezone.now()) - execution.started_at).total_seconds(), 3)
    done = sum(counts[s] for s in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED))
    return {
        "id": str(execution.pk),
        "status": execution.status,
        "terminal": execution.is_terminal,
        "steps_total": counts["total"],
        "steps_done": done,
        "steps": {status: counts[status] for status in StepStatus.values},
        "running": running,
        "elapsed_seconds": elapsed,
        "error": execution.error,
    }
