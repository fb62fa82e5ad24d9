"""Tenant concurrency quotas at dispatch: steps beyond the quota wait in line, slots never leak.

The first tests run real workers; the last ones call the claim in-process inside a test
transaction (so no message leaves it) to check the line's bookkeeping step by step.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from executions.choices import ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.services import execution_create, stalled_steps_recover
from executions.services.claims import attempt_record, step_claim
from executions.services.quotas import QuotaHeld, quota_release
from executions.tests.conftest import steps_by_id, wait_finished, workflow_doc
from mc_project.tests.test_metrics import decisions, scrape
from policy.choices import DecisionResult, DecisionStage, PolicyMode
from policy.dispatch import quota_rules_forget
from policy.models import PolicyDecision, TenantPolicy
from tests.workers import BeatProcess, WorkerProcess, wait_until


def _sleepers(name: str, count: int, seconds: float) -> dict[str, Any]:
    tasks = [{"id": f"s{index}", "uses": "pkg:mc/sleep@1", "with": {"seconds": seconds}} for index in range(count)]
    return workflow_doc(name, tasks)


def _cap(tenant: Any, small: int, mode: str = PolicyMode.ENFORCE) -> None:
    TenantPolicy.objects.create(
        tenant=tenant, pack="quotas", mode=mode, limits={"max_concurrent_steps": {"small": small}}
    )
    quota_rules_forget()


def _intervals(execution: Execution) -> list[tuple[datetime, datetime]]:
    """Every attempt of every step, as (started, finished)."""
    intervals = []
    for step in StepRun.objects.filter(execution=execution):
        for attempt in step.attempts:
            intervals.append(
                (datetime.fromisoformat(attempt["started_at"]), datetime.fromisoformat(attempt["finished_at"]))
            )
    return intervals


def _most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    # An attempt that ends at the instant another starts (a lost attempt closed by its successor) does not overlap it.
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: (e[0], e[1])
    )
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def _dispatch_denials(execution: Execution) -> list[PolicyDecision]:
    return list(
        PolicyDecision.objects.filter(execution=execution, stage=DecisionStage.DISPATCH, result=DecisionResult.DENY)
    )


def _assert_no_slot_left(execution: Execution) -> None:
    steps = StepRun.objects.filter(execution=execution)
    assert not steps.filter(status=StepStatus.RUNNING).exists()
    assert not steps.filter(
        quota_held_since__isnull=False, status__in=[StepStatus.QUEUED, StepStatus.RETRYING]
    ).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_steps_beyond_the_quota_wait_in_line_across_workers(
    worker: WorkerProcess, worker_log_dir: Path, publish: Any, tenant: Any, runner_user: Any
) -> None:
    _cap(tenant, small=2)
    dispatch_denials = decisions("quotas", stage="dispatch", result="deny", mode="enforce")
    counted_before = scrape(Client()).get(dispatch_denials, 0)
    wide = WorkerProcess(worker_log_dir, name="mc-quota-wide", concurrency=4).start()  # 6 processes with `worker`
    try:
        version = publish(_sleepers("quota-load", 10, 0.4))
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        execution = wait_finished(execution, timeout=60)
    finally:
        wide.stop()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert _most_at_once(_intervals(execution)) == 2
    denials = _dispatch_denials(execution)
    assert denials, "steps beyond the quota are decided by the quotas pack"
    assert {item["code"] for decision in denials for item in decision.deny} == {"quota_exceeded"}
    assert all(decision.mode == PolicyMode.ENFORCE and decision.revision for decision in denials)
    _assert_no_slot_left(execution)
    # Counted where they were made, in the workers' pool processes, and summed by /metrics.
    assert scrape(Client())[dispatch_denials] - counted_before == len(denials)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_line_is_first_come_first_served(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any
) -> None:
    _cap(tenant, small=1)
    version = publish(_sleepers("quota-line", 4, 0.2))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    execution = wait_finished(execution, timeout=60)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert _most_at_once(_intervals(execution)) == 1
    held_in_order = [decision.deny[0]["message"].split('"')[1] for decision in _dispatch_denials(execution)[::-1]]
    started_in_order = [step.step_id for step in StepRun.objects.filter(execution=execution).order_by("started_at")]
    assert len(held_in_order) == 3
    assert started_in_order[1:] == held_in_order


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_process_does_not_leak_its_slot(
    worker: WorkerProcess, worker_log_dir: Path, publish: Any, tenant: Any, runner_user: Any
) -> None:
    _cap(tenant, small=2)
    wide = WorkerProcess(worker_log_dir, name="mc-quota-victim", concurrency=3, queues="mc.small").start()
    worker.stop()  # only `wide` runs steps, so the kill hits them
    try:
        version = publish(_sleepers("quota-kill", 6, 1.0))
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        running = StepRun.objects.filter(execution=execution, status=StepStatus.RUNNING)
        wait_until(lambda: running.count() == 2, message="two steps to run")
        wait_until(lambda: _dispatch_denials(execution), message="a step to be held")
        for pid in wide.pool_pids():
            os.kill(pid, signal.SIGKILL)
        execution = wait_finished(execution, timeout=60)
    finally:
        wide.stop()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    lost = [step for step in steps_by_id(execution).values() if step.lost_attempts]
    assert lost, "the kill hit running steps"
    assert all([a["outcome"] for a in step.attempts] == ["lost", "succeeded"] for step in lost)
    assert _most_at_once(_intervals(execution)) == 2
    _assert_no_slot_left(execution)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_does_not_leak_its_slots_and_the_next_worker_serves_the_line(
    worker: WorkerProcess, worker_log_dir: Path, publish: Any, tenant: Any, runner_user: Any
) -> None:
    _cap(tenant, small=2)
    worker.stop()
    doomed = WorkerProcess(worker_log_dir, name="mc-quota-doomed", concurrency=3, queues="mc.small").start()
    version = publish(_sleepers("quota-worker-kill", 5, 1.0))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    running = StepRun.objects.filter(execution=execution, status=StepStatus.RUNNING)
    wait_until(lambda: running.count() == 2, message="two steps to run")
    wait_until(lambda: len(_dispatch_denials(execution)) == 3, message="three steps to be held")
    doomed.kill()
    # The doomed worker's heartbeat stops: the recovery beat finds its attempts lost.
    rescuer = WorkerProcess(worker_log_dir, name="mc-quota-rescuer", concurrency=3).start()
    beat = BeatProcess(worker_log_dir, env={"MC_RECOVERY_INTERVAL": "1"}).start()
    try:
        execution = wait_finished(execution, timeout=60)
    finally:
        beat.stop()
        rescuer.stop()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert sum(1 for step in steps_by_id(execution).values() if step.lost_attempts) == 2
    assert _most_at_once(_intervals(execution)) == 2
    _assert_no_slot_left(execution)


# --- in-process: the line's bookkeeping ------------------------------------------------------


def _two_steps(publish: Any, tenant: Any, runner_user: Any, name: str = "quota-unit") -> tuple[StepRun, StepRun]:
    version = publish(_sleepers(name, 2, 0.1))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    first, second = StepRun.objects.filter(execution=execution).order_by("sequence")
    return first, second


@pytest.mark.django_db
def test_a_held_step_is_decided_once_keeps_its_place_and_is_offered_the_freed_slot(
    publish: Any, tenant: Any, runner_user: Any
) -> None:
    _cap(tenant, small=1)
    first, second = _two_steps(publish, tenant, runner_user)
    assert step_claim(first.pk, worker="w1") is not None
    with pytest.raises(QuotaHeld) as held:
        step_claim(second.pk, worker="w1")
    assert held.value.delay is None  # a step waits for an offer; it does not poll
    second.refresh_from_db()
    assert second.status == StepStatus.QUEUED and second.quota_held_since is not None
    (decision,) = _dispatch_denials(first.execution)
    assert decision.deny == [
        {
            "code": "quota_exceeded",
            "message": 'starting step "s1" would make 2 "small" steps run at once for this tenant; the limit is 1',
            "path": "/usage/running_steps/small",
        }
    ]
    place = second.quota_held_since
    with pytest.raises(QuotaHeld):
        step_claim(second.pk, worker="w1")
    second.refresh_from_db()
    assert second.quota_held_since == place
    assert len(_dispatch_denials(first.execution)) == 1

    assert quota_release(tenant.pk, "small") == 0  # no slot is free yet
    StepRun.objects.filter(pk=first.pk).update(status=StepStatus.SUCCEEDED, finished_at=timezone.now())
    assert quota_release(tenant.pk, "small") == 1
    assert quota_release(tenant.pk, "small") == 0  # the offer stands; it is not made twice
    StepRun.objects.filter(pk=second.pk).update(quota_held_since=place - timedelta(seconds=2))  # it waited 2 s
    claim = step_claim(second.pk, worker="w1")
    assert claim is not None
    second.refresh_from_db()
    assert (second.status, second.quota_held_since, second.quota_released_at) == (StepStatus.RUNNING, None, None)
    # The attempt keeps how long it waited in line (the run page's timeline shows it).
    assert 2000 <= second.quota_waited_ms < 60_000
    assert attempt_record(second, "succeeded")["quota_waited_ms"] == second.quota_waited_ms
    first.refresh_from_db()
    assert first.quota_waited_ms is None and "quota_waited_ms" not in attempt_record(first, "succeeded")


@pytest.mark.django_db
def test_a_fresh_step_does_not_pass_the_line(publish: Any, tenant: Any, runner_user: Any) -> None:
    _cap(tenant, small=1)
    first, second = _two_steps(publish, tenant, runner_user)
    step_claim(first.pk, worker="w1")
    with pytest.raises(QuotaHeld):
        step_claim(second.pk, worker="w1")
    StepRun.objects.filter(pk=first.pk).update(status=StepStatus.SUCCEEDED)
    late, _ = _two_steps(
        publish, tenant, runner_user, name="quota-late"
    )  # another run's step arrives while s1 is in line
    with pytest.raises(QuotaHeld):
        step_claim(late.pk, worker="w1")
    (decision,) = _dispatch_denials(late.execution)
    assert decision.deny[0]["path"] == "/usage/waiting_ahead/small"
    assert step_claim(second.pk, worker="w1") is not None


@pytest.mark.django_db
def test_advisory_mode_records_the_denial_and_lets_the_step_start(publish: Any, tenant: Any, runner_user: Any) -> None:
    _cap(tenant, small=1, mode=PolicyMode.ADVISORY)
    first, second = _two_steps(publish, tenant, runner_user)
    assert step_claim(first.pk, worker="w1") is not None
    assert step_claim(second.pk, worker="w1") is not None
    (decision,) = _dispatch_denials(first.execution)
    assert decision.mode == PolicyMode.ADVISORY and not decision.blocks


@pytest.mark.django_db
def test_within_the_quota_no_decision_is_needed(publish: Any, tenant: Any, runner_user: Any) -> None:
    first, second = _two_steps(publish, tenant, runner_user)  # default cap: 20 small steps
    assert step_claim(first.pk, worker="w1") is not None
    assert step_claim(second.pk, worker="w1") is not None
    assert not PolicyDecision.objects.filter(stage=DecisionStage.DISPATCH).exists()


@pytest.mark.django_db
def test_the_recovery_beat_offers_free_slots_to_a_forgotten_line(publish: Any, tenant: Any, runner_user: Any) -> None:
    _cap(tenant, small=1)
    first, second = _two_steps(publish, tenant, runner_user)
    step_claim(first.pk, worker="w1")
    with pytest.raises(QuotaHeld):
        step_claim(second.pk, worker="w1")
    # The worker running s0 dies after its row left running but before it offered the slot.
    StepRun.objects.filter(pk=first.pk).update(status=StepStatus.FAILED)
    assert stalled_steps_recover() == 1
    second.refresh_from_db()
    assert second.quota_released_at is not None
