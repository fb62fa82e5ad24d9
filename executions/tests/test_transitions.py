"""Status changes go through the transition functions, which refuse illegal moves; backoff grows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from executions.choices import EXECUTION_TERMINAL, STEP_TERMINAL, ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.services import execution_create
from executions.services.dispatch import backoff_delay
from executions.transitions import IllegalTransition, execution_transition, step_transition, steps_transition
from tests.factories import UserFactory, manifest
from workflows.services import workflow_create, workflow_publish


@pytest.fixture
def execution(tenant: Any) -> Execution:
    user = UserFactory(membership__tenant=tenant, membership__role="admin")
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest())
    workflow_publish(workflow=workflow, actor=user)
    return execution_create(tenant=tenant, actor=user, workflow=workflow)[0]


@pytest.mark.django_db
def test_terminal_states_are_final(execution: Execution) -> None:
    execution_transition(execution, ExecutionStatus.SUCCEEDED)
    for status in ExecutionStatus.values:
        with pytest.raises(IllegalTransition):
            execution_transition(execution, status)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert ExecutionStatus.PLANNED in EXECUTION_TERMINAL


@pytest.mark.django_db
def test_step_cannot_skip_from_pending_to_succeeded_or_leave_a_terminal_state(execution: Execution) -> None:
    step = StepRun.objects.get(execution=execution, step_id="left")
    assert step.status == StepStatus.PENDING
    with pytest.raises(IllegalTransition):
        step_transition(step, StepStatus.SUCCEEDED)
    step_transition(step, StepStatus.SKIPPED)
    for status in StepStatus.values:
        with pytest.raises(IllegalTransition):
            step_transition(step, status)
    assert StepStatus.SKIPPED in STEP_TERMINAL


@pytest.mark.django_db
def test_bulk_transition_moves_only_rows_in_the_given_states(execution: Execution) -> None:
    rows = StepRun.objects.filter(execution=execution)
    moved = steps_transition(rows, [StepStatus.PENDING], StepStatus.CANCELLED)
    assert moved == 3  # fetch is queued, not pending
    assert rows.get(step_id="fetch").status == StepStatus.QUEUED
    with pytest.raises(IllegalTransition):
        steps_transition(rows, [StepStatus.SUCCEEDED], StepStatus.RUNNING)


def test_backoff_grows_until_the_cap_and_jitter_only_shortens(settings: Any) -> None:
    settings.MC_RETRY_BACKOFF = {"base": 1.0, "factor": 2.0, "cap": 10.0, "jitter": 0.25}
    for _ in range(200):
        delays = [backoff_delay(attempt) for attempt in range(1, 7)]
        assert delays[0] < delays[1] < delays[2] < delays[3]  # 1, 2, 4, 8 less at most 25 %
        assert all(0.75 <= d / min(10.0, 2 ** (n - 1)) <= 1.0 for n, d in enumerate(delays, start=1))
        assert max(delays) <= 10.0


@pytest.mark.django_db
def test_a_step_that_keeps_losing_its_worker_fails_instead_of_looping(execution: Execution) -> None:
    from executions.choices import MAX_LOST_ATTEMPTS
    from executions.services.claims import step_claim

    step = StepRun.objects.get(execution=execution, step_id="fetch")
    for delivery in range(MAX_LOST_ATTEMPTS + 1):
        # Each delivery finds the last attempt unfinished, begun a minute ago by a worker that never beat.
        StepRun.objects.filter(pk=step.pk).update(attempt_started_at=timezone.now() - timedelta(minutes=1))
        claim = step_claim(step.pk, worker=f"w{delivery}")
        assert claim is not None
    StepRun.objects.filter(pk=step.pk).update(attempt_started_at=timezone.now() - timedelta(minutes=1))
    assert step_claim(step.pk, worker="last") is None
    step.refresh_from_db()
    assert step.status == StepStatus.FAILED and step.error["code"] == "worker_lost"
    assert [a["outcome"] for a in step.attempts] == ["lost"] * (MAX_LOST_ATTEMPTS + 1)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED  # nothing else had started: settled at once
    assert set(StepRun.objects.exclude(pk=step.pk).values_list("status", flat=True)) == {StepStatus.SKIPPED}


@pytest.mark.django_db
def test_a_soft_time_limit_striking_while_recording_still_records(
    execution: Execution, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    from executions.services import recording, runner

    real, struck = recording.step_succeed, []

    def interrupted_once(*args: Any, **kwargs: Any) -> bool:
        if not struck:
            struck.append(True)
            raise SoftTimeLimitExceeded()
        return real(*args, **kwargs)

    monkeypatch.setattr(recording, "step_succeed", interrupted_once)
    step = StepRun.objects.get(execution=execution, step_id="fetch")
    assert runner.step_execute(step.pk, worker="w") is None
    step.refresh_from_db()
    assert struck and step.status == StepStatus.SUCCEEDED and step.outputs == {"message": "fetch"}
    assert set(StepRun.objects.filter(step_id__in=["left", "right"]).values_list("status", flat=True)) == {"queued"}
