"""The engine's hot paths within their budget of SQL statements, broker messages and policy evaluations.

A feature that adds a query to creating a run, claiming a step, finishing one or settling
a run fails here instead of silently costing throughput (docs/benchmarks.md). When a
change lowers a figure, lower its budget in the same commit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions.models import Execution, StepRun
from executions.services import execution_create, step_execute
from executions.services.messages import message_for
from executions.tests.conftest import workflow_doc
from mc_project.celery import app
from policy.models import PolicyDecision
from tests.workers import WorkerProcess, purge_queues
from workflows.selectors import workflow_get

pytestmark = [pytest.mark.django_db(transaction=True)]

# Budgets: SQL statements (BEGIN, COMMIT and SAVEPOINTs included) of each path.
CREATE = 7  # route, spend today; BEGIN, the run, its decisions, its steps (roots queued), COMMIT
PLAIN_STEP = 7  # claim under the quota lock (one round trip); count down, record, release; offer a slot
STEP_READING_OUTPUTS = 9  # the same, and its inputs rendered from an upstream step's outputs
LAST_STEP = 11  # the same, and settle the run and write its receipt row
PACKS = 4  # residency, pii, budget, quotas: one evaluation each at execute


@pytest.fixture
def quiet(session_worker: WorkerProcess) -> Iterator[None]:
    """The steps run in this process, one by one; no worker takes their messages."""
    session_worker.stop()
    purge_queues(app)
    yield
    purge_queues(app)


def _diamond(publish: Any) -> Any:
    """a -> s0, s1, s2 (reading a's outputs) -> z: five steps."""
    reads = {"message": "${{ steps.a.outputs.message }}"}
    return publish(
        workflow_doc(
            "budget",
            [
                {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": 1}},
                *({"id": f"s{i}", "uses": "pkg:mc/echo@1", "with": reads, "needs": ["a"]} for i in range(3)),
                {"id": "z", "uses": "pkg:mc/echo@1", "with": {"message": 2}, "needs": ["s0", "s1", "s2"]},
            ],
        )
    )


def _run(execution: Execution, step_id: str, messages: dict[str, dict[str, Any]] | None = None) -> int:
    """Run a step as its message asks (with the kwargs the engine sent); the statements it took."""
    step = StepRun.objects.get(execution=execution, step_id=step_id)
    kwargs = messages[message_for(step).task_id] if messages is not None else {}
    with CaptureQueriesContext(connection) as queries:
        assert step_execute(step.pk, worker="budget@test", **kwargs) is None
    return len(queries)


def _taken() -> dict[str, dict[str, Any]]:
    """Take the step messages waiting in mc.small: their kwargs by task id."""
    found = {}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for priority in channel.priority_steps:
            key = channel._q_for_pri("mc.small", priority)
            for raw in channel.client.lrange(key, 0, -1):
                message = json.loads(raw)
                _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                found[message["headers"]["id"]] = kwargs
    purge_queues(app)
    return found


def test_a_run_of_five_steps_stays_within_its_budget(quiet: None, publish: Any, tenant: Any, runner_user: Any) -> None:
    version = _diamond(publish)
    warm, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    for step_id in ("a", "s0", "s1", "s2", "z"):  # caches warm, as in a server and its workers
        _run(warm, step_id)
    purge_queues(app)
    workflow = workflow_get(user=runner_user, workflow_id=version.workflow_id)  # as the API reads it
    with CaptureQueriesContext(connection) as create:
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=workflow)
    assert len(create) <= CREATE, [query["sql"][:80] for query in create]
    assert PolicyDecision.objects.filter(execution=execution).count() == PACKS
    messages = _taken()  # this process runs the steps, as their messages ask
    assert len(messages) == 1  # one message: the root
    # Every message names its tenant and class, so each claim takes one round trip.
    assert all(kwargs == {"tenant": str(tenant.pk), "resource_class": "small"} for kwargs in messages.values())

    assert _run(execution, "a", messages) <= PLAIN_STEP
    messages = _taken()
    assert len(messages) == 3  # its three dependents, in one go
    assert all(kwargs == {"tenant": str(tenant.pk), "resource_class": "small"} for kwargs in messages.values())
    for step_id in ("s0", "s1", "s2"):
        assert _run(execution, step_id, messages) <= STEP_READING_OUTPUTS
    messages = _taken()
    assert len(messages) == 1  # z, released once by the last of its needs
    assert _run(execution, "z", messages) <= LAST_STEP
    execution.refresh_from_db()
    assert execution.status == "succeeded"
