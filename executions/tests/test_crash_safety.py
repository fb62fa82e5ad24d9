"""A worker killed in the middle of a step: the step runs again and its outputs are recorded once."""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from executions.choices import ExecutionStatus, StepStatus
from executions.models import StepRun
from executions.services import execution_create, stalled_steps_recover
from executions.services.messages import message_for, send_steps
from executions.tests.conftest import steps_by_id, wait_finished, workflow_doc
from tests.workers import WorkerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOC = workflow_doc(
    "crash",
    [
        {"id": "before", "uses": "pkg:mc/echo@1", "with": {"message": "x"}},
        {"id": "victim", "uses": "pkg:mc/sleep@1", "with": {"seconds": 1.5}, "needs": ["before"]},
        {
            "id": "after",
            "uses": "pkg:mc/echo@1",
            "with": {"message": "${{ steps.victim.outputs.slept }}"},
            "needs": ["victim"],
        },
    ],
)


def _start(publish: Any, tenant: Any, runner_user: Any) -> Any:
    version = publish(DOC)
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    wait_until(lambda: steps_by_id(execution)["victim"].status == StepStatus.RUNNING, message="victim to start")
    return execution


def _assert_recovered(execution: Any) -> None:
    execution = wait_finished(execution, timeout=60)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    victim = steps_by_id(execution)["victim"]
    outcomes = [attempt["outcome"] for attempt in victim.attempts]
    assert outcomes == ["lost", "succeeded"], victim.attempts
    assert victim.lost_attempts == 1
    assert steps_by_id(execution)["after"].outputs == {"message": 1.5}
    assert all(len(step.attempts) == 1 for key, step in steps_by_id(execution).items() if key != "victim")


def test_killing_the_pool_process_mid_step_redelivers_it(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any
) -> None:
    execution = _start(publish, tenant, runner_user)
    for pid in worker.pool_pids():
        os.kill(pid, signal.SIGKILL)
    _assert_recovered(execution)


def test_a_duplicate_delivery_of_a_running_step_is_dropped(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any
) -> None:
    execution = _start(publish, tenant, runner_user)
    victim = steps_by_id(execution)["victim"]
    send_steps([message_for(victim)])  # as Redis does when a step outlives the visibility timeout
    execution = wait_finished(execution)
    assert execution.status == ExecutionStatus.SUCCEEDED
    victim.refresh_from_db()
    assert [attempt["outcome"] for attempt in victim.attempts] == ["succeeded"]
    log = worker.log_path.read_text(errors="replace")
    assert len(re.findall(rf"\[{victim.task_id}\] received", log)) == 2  # both deliveries arrived


def test_recovery_redelivers_a_step_whose_worker_vanished(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any
) -> None:
    version = publish(workflow_doc("vanished", [{"id": "orphan", "uses": "pkg:mc/echo@1", "with": {"message": 7}}]))
    with transaction.atomic():  # no message is sent: the row is set up as a dead worker left it
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        transaction.get_connection().run_on_commit = []  # drop the dispatch: this step's message is "lost"
    long_ago = timezone.now() - timedelta(hours=3)
    StepRun.objects.filter(execution=execution).update(
        status=StepStatus.RUNNING,
        attempt=1,
        attempt_started_at=long_ago,
        started_at=long_ago,
        worker="gone@nowhere",
        worker_pid=1,
    )
    assert stalled_steps_recover() == 1
    execution = wait_finished(execution)
    assert execution.status == ExecutionStatus.SUCCEEDED
    orphan = steps_by_id(execution)["orphan"]
    assert [attempt["outcome"] for attempt in orphan.attempts] == ["lost", "succeeded"]
    assert orphan.outputs == {"message": 7}
    lost, _ = orphan.log.split("--- attempt 2 on ")
    assert lost.startswith("--- attempt 1 on gone@nowhere ---\n") and "ERROR worker_lost: attempt 1 was lost: " in lost
    assert "past its hard time limit" in lost and "(it ran on gone@nowhere, pid 1)" in lost
