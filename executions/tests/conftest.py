"""Helpers for engine tests: wait for a run, read its steps, write a manifest (fixtures: the root conftest)."""

from __future__ import annotations

from typing import Any

from executions.choices import EXECUTION_TERMINAL
from executions.models import Execution, StepRun
from tests.workers import wait_until


def wait_finished(execution: Execution, timeout: float = 40) -> Execution:
    def finished() -> Execution | None:
        execution.refresh_from_db()
        return execution if execution.status in EXECUTION_TERMINAL else None

    try:
        return wait_until(finished, timeout=timeout, message=f"execution {execution.pk} to finish")  # type: ignore[no-any-return]
    except AssertionError as exc:
        steps = StepRun.objects.filter(execution=execution).values_list(
            "step_id", "kind", "status", "attempt", "attempts", "worker", "attempt_started_at"
        )
        raise AssertionError(f"{exc}; status {execution.status}; steps: {list(steps)}") from None


def steps_by_id(execution: Execution, kind: str = "step") -> dict[str, StepRun]:
    return {step.step_id: step for step in StepRun.objects.filter(execution=execution, kind=kind)}


def workflow_doc(name: str, tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "tasks": tasks, **extra}
