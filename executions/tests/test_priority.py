"""Critical path first: a step on its run's critical path overtakes queued steps with slack.

The shared worker is stopped, the run's roots are all queued, then a worker with one pool
process takes them one at a time: the order it starts them in is the broker's order.
"""

from __future__ import annotations

from typing import Any

import pytest

from executions.models import StepRun
from executions.services import execution_create
from executions.tests.conftest import wait_finished, workflow_doc
from mc_project.celery import app
from tests.workers import WorkerProcess, purge_queues

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_critical_step_starts_before_fast_steps_queued_ahead_of_it(
    session_worker: WorkerProcess, worker_log_dir: Any, publish: Any, tenant: Any, runner_user: Any
) -> None:
    session_worker.stop()
    purge_queues(app)
    fast = [{"id": f"fast-{i:02d}", "uses": "pkg:mc/echo@1", "with": {"message": i}} for i in range(10)]
    slow = {"id": "slow", "uses": "pkg:mc/sleep@1", "with": {"seconds": 0.5}}
    version = publish(workflow_doc("critical-first", [*fast, slow]))  # slow last: sent after the fast ones
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    priorities = dict(StepRun.objects.filter(execution=execution).values_list("step_id", "priority"))
    assert priorities == {"slow": 0, **{step["id"]: 3 for step in fast}}
    single = WorkerProcess(worker_log_dir, name="mc-one-slot", concurrency=1).start()
    try:
        execution = wait_finished(execution)
    finally:
        single.stop()
    order = list(StepRun.objects.filter(execution=execution).order_by("started_at").values_list("step_id", flat=True))
    assert order[0] == "slow", order
