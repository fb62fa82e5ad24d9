"""The engine with a real Celery worker on Redis and PostgreSQL: order, parallelism, fan-out,
retries, failures, compensation, cancel and timeouts."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.choices import ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.tests.conftest import steps_by_id, wait_finished, workflow_doc
from mc_project.tenancy.choices import Role
from tests.workers import WorkerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


def start(client: APIClient, version: Any, **body: Any) -> Execution:
    response = client.post("/api/executions", {"workflow": str(version.workflow_id), **body}, format="json")
    assert response.status_code == 201, response.content
    return Execution.objects.get(pk=response.json()["id"])


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_dag_runs_in_dependency_order_with_parallel_branches(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "order",
            [
                {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "${{ inputs.greeting }}"}},
                {"id": "b", "uses": "pkg:mc/sleep@1", "with": {"seconds": 1}, "needs": ["a"]},
                {"id": "c", "uses": "pkg:mc/sleep@1", "with": {"seconds": 1}, "needs": ["a"]},
                {
                    "id": "d",
                    "uses": "pkg:mc/echo@1",
                    "with": {"message": "${{ steps.a.outputs.message }} after ${{ steps.b.outputs.slept }}"},
                    "needs": ["b", "c"],
                },
            ],
            inputs={"greeting": {"type": "string", "default": "hello"}},
        )
    )
    execution = wait_finished(start(client, version, inputs={"greeting": "hi"}))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    steps = steps_by_id(execution)
    assert {s.status for s in steps.values()} == {StepStatus.SUCCEEDED}
    a, b, c, d = steps["a"], steps["b"], steps["c"], steps["d"]
    assert a.finished_at <= b.started_at and a.finished_at <= c.started_at
    # b and c overlap: both start before either finishes (two pool processes).
    assert max(b.started_at, c.started_at) < min(b.finished_at, c.finished_at)
    assert d.started_at >= max(b.finished_at, c.finished_at)
    assert d.outputs == {"message": "hi after 1"}
    assert all(len(s.input_digest) == 64 and len(s.output_digest) == 64 for s in steps.values())
    assert execution.finished_at >= d.finished_at


def test_diamond_dependent_is_queued_exactly_once_under_load(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "diamond",
            [
                {"id": "top", "uses": "pkg:mc/echo@1", "with": {"message": 1}},
                {"id": "left", "uses": "pkg:mc/echo@1", "with": {"message": 2}, "needs": ["top"]},
                {"id": "right", "uses": "pkg:mc/echo@1", "with": {"message": 3}, "needs": ["top"]},
                {"id": "bottom", "uses": "pkg:mc/echo@1", "with": {"message": 4}, "needs": ["left", "right"]},
            ],
        )
    )
    executions = [start(client, version) for _ in range(25)]
    for execution in executions:
        assert wait_finished(execution).status == ExecutionStatus.SUCCEEDED
    bottoms = StepRun.objects.filter(execution__in=executions, step_id="bottom")
    assert bottoms.count() == 25
    assert all(len(step.attempts) == 1 for step in bottoms)
    # One message per bottom step: the worker received each task id once.
    log = worker.log_path.read_text(errors="replace")
    for step in bottoms:
        assert len(re.findall(rf"\[{step.task_id}\] received", log)) == 1, step.task_id


def test_matrix_runs_as_a_chord_and_joins_outputs_in_order(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "matrix",
            [
                {
                    "id": "fan",
                    "uses": "pkg:mc/echo@1",
                    "with": {"message": "${{ matrix.size }}-${{ matrix.n }}"},
                    "strategy": {"matrix": {"size": ["s", "m"], "n": [1, 2, 3]}},
                },
                {
                    "id": "join",
                    "uses": "pkg:mc/echo@1",
                    "with": {"message": "${{ steps.fan.outputs.shards }}"},
                    "needs": ["fan"],
                },
            ],
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    shards = list(StepRun.objects.filter(execution=execution, kind="shard").order_by("shard_index"))
    # Keys in sorted order ("n" before "size"), values in the order written.
    assert [s.matrix for s in shards] == [{"size": size, "n": n} for n in (1, 2, 3) for size in ("s", "m")]
    expected = [{"message": f"{size}-{n}"} for n in (1, 2, 3) for size in ("s", "m")]
    steps = steps_by_id(execution)
    assert steps["fan"].outputs == {"shards": expected}
    assert steps["join"].outputs == {"message": expected}
    assert "executions.join_shards" in worker.log_path.read_text(errors="replace")


def test_retries_back_off_with_growing_gaps_then_succeed(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "retry",
            [{"id": "flaky", "uses": "pkg:mc/fail@1", "with": {"times": 3, "message": "not yet"}, "retries": 4}],
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    step = steps_by_id(execution)["flaky"]
    assert step.attempt == 4
    assert [a["outcome"] for a in step.attempts] == ["failed", "failed", "failed", "succeeded"]
    assert all(a["error"] == "not yet" for a in step.attempts[:3])
    starts = [ts(a["started_at"]) for a in step.attempts]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert step.outputs == {"attempts": 4}


def test_running_out_of_retries_fails_skips_and_compensates_in_reverse_order(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    def undo(name: str) -> dict[str, Any]:
        return {"uses": "pkg:mc/echo@1", "with": {"message": f"undo {name}: ${{{{ steps.{name}.outputs.message }}}}"}}

    version = publish(
        workflow_doc(
            "saga",
            [
                {"id": "reserve", "uses": "pkg:mc/echo@1", "with": {"message": "r"}, "compensate": undo("reserve")},
                {
                    "id": "charge",
                    "uses": "pkg:mc/echo@1",
                    "with": {"message": "c"},
                    "needs": ["reserve"],
                    "compensate": undo("charge"),
                },
                {
                    "id": "ship",
                    "uses": "pkg:mc/fail@1",
                    "with": {"message": "no truck"},
                    "needs": ["charge"],
                    "retries": 1,
                },
                {"id": "notify", "uses": "pkg:mc/echo@1", "with": {"message": "done"}, "needs": ["ship"]},
                {"id": "audit", "uses": "pkg:mc/echo@1", "with": {"message": "a"}},
            ],
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error["code"] == "step_failed" and execution.error["step"] == "ship"
    steps = steps_by_id(execution)
    assert steps["ship"].status == StepStatus.FAILED and steps["ship"].attempt == 2
    assert steps["ship"].error["message"] == "no truck"
    assert steps["notify"].status == StepStatus.SKIPPED and steps["notify"].attempt == 0
    compensations = list(StepRun.objects.filter(execution=execution, kind="compensation").order_by("sequence"))
    assert [c.step_id for c in compensations] == ["charge", "reserve"]  # reverse order of completion
    assert [c.status for c in compensations] == [StepStatus.SUCCEEDED] * 2
    assert compensations[0].finished_at <= compensations[1].started_at
    assert compensations[0].outputs == {"message": "undo charge: c"}


def test_non_retryable_input_error_fails_at_once_as_a_clean_step_failure(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "badinput",
            [{"id": "nap", "uses": "pkg:mc/sleep@1", "with": {"seconds": "${{ inputs.seconds }}"}, "retries": 3}],
            inputs={"seconds": {"type": "string", "default": "soon"}},
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.FAILED
    step = steps_by_id(execution)["nap"]
    assert step.attempt == 1
    assert step.error["code"] == "input_invalid"
    assert step.error["details"][0]["path"] == "/with/seconds"
    assert "traceback" not in step.error


def test_timeout_stops_the_attempt_and_is_recorded(worker: WorkerProcess, publish: Any, client: APIClient) -> None:
    version = publish(
        workflow_doc("slow", [{"id": "nap", "uses": "pkg:mc/sleep@1", "with": {"seconds": 30}, "timeout_seconds": 1}])
    )
    execution = wait_finished(start(client, version), timeout=20)
    assert execution.status == ExecutionStatus.FAILED
    step = steps_by_id(execution)["nap"]
    assert step.error["code"] == "timeout"
    assert (step.finished_at - step.started_at).total_seconds() < 10


def test_cancel_stops_running_and_pending_steps(worker: WorkerProcess, publish: Any, client: APIClient) -> None:
    version = publish(
        workflow_doc(
            "cancel",
            [
                {"id": "long", "uses": "pkg:mc/sleep@1", "with": {"seconds": 60}},
                {"id": "after", "uses": "pkg:mc/echo@1", "with": {"message": 1}, "needs": ["long"]},
            ],
        )
    )
    execution = start(client, version)
    wait_until(lambda: steps_by_id(execution)["long"].status == StepStatus.RUNNING, message="long to start")
    response = client.post(f"/api/executions/{execution.pk}/cancel")
    assert response.status_code == 200, response.content
    execution = wait_finished(execution, timeout=15)
    assert execution.status == ExecutionStatus.CANCELLED
    steps = steps_by_id(execution)
    assert steps["long"].status == StepStatus.CANCELLED and steps["after"].status == StepStatus.CANCELLED
    again = client.post(f"/api/executions/{execution.pk}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "execution_not_cancellable"
    # The pool process running the sleep was terminated: the worker is free again.
    quick = wait_finished(
        start(client, publish(workflow_doc("quick", [{"id": "x", "uses": "pkg:mc/echo@1", "with": {"message": 1}}])))
    )
    assert quick.status == ExecutionStatus.SUCCEEDED


def test_shell_arguments_are_never_interpreted_by_a_shell(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    version = publish(
        workflow_doc(
            "shell", [{"id": "say", "uses": "pkg:mc/shell@1", "with": {"argv": ["echo", "; rm -rf / && echo pwned"]}}]
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    outputs = steps_by_id(execution)["say"].outputs
    assert outputs["stdout"] == "; rm -rf / && echo pwned\n"
    assert outputs["exit_code"] == 0


def test_a_package_ignoring_the_soft_limit_is_killed_at_the_hard_limit(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    # The test worker allows executions.tests.stubborn (tests/workers.py).
    version = publish(
        workflow_doc(
            "stubborn",
            [
                {
                    "id": "hang",
                    "uses": "pkg:mc/python@1",
                    "with": {"callable": "executions.tests.stubborn:ignore_soft_limit", "args": {"seconds": 30}},
                    "timeout_seconds": 1,
                },
            ],
        )
    )
    execution = wait_finished(start(client, version), timeout=30)
    assert execution.status == ExecutionStatus.FAILED
    step = steps_by_id(execution)["hang"]
    assert step.error["code"] == "timeout" and "hard time limit" in step.error["message"]
    assert "ERROR timeout: killed at the hard time limit" in step.log  # the log says why, too
    assert (step.finished_at - step.started_at).total_seconds() < 15
    quick = wait_finished(
        start(
            client, publish(workflow_doc("after-hang", [{"id": "x", "uses": "pkg:mc/echo@1", "with": {"message": 1}}]))
        )
    )
    assert quick.status == ExecutionStatus.SUCCEEDED


def test_large_outputs_go_to_the_artifact_store_and_still_feed_later_steps(
    worker: WorkerProcess, publish: Any, client: APIClient
) -> None:
    big = "x" * 100_000  # over MC_OUTPUT_INLINE_LIMIT (64 KiB)
    version = publish(
        workflow_doc(
            "big",
            [
                {"id": "make", "uses": "pkg:mc/echo@1", "with": {"message": big}},
                {
                    "id": "use",
                    "uses": "pkg:mc/python@1",
                    "needs": ["make"],
                    "with": {
                        "callable": "executions.packages.samples:word_count",
                        "args": {"text": "${{ steps.make.outputs.message }}"},
                    },
                },
            ],
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    steps = steps_by_id(execution)
    assert steps["make"].outputs is None
    assert steps["make"].outputs_ref == "sha256:" + steps["make"].output_digest
    from executions.artifacts import ArtifactStore

    assert ArtifactStore().get(steps["make"].outputs_ref) == ('{"message":"' + big + '"}').encode()
    assert steps["use"].outputs is not None
    detail = client.get(f"/api/executions/{execution.pk}/steps/make").json()
    assert detail["outputs"] is None and detail["outputs_ref"] == steps["make"].outputs_ref


def test_max_parallel_caps_the_shards_running_at_once(worker: WorkerProcess, publish: Any, client: APIClient) -> None:
    version = publish(
        workflow_doc(
            "throttled",
            [
                {
                    "id": "nap",
                    "uses": "pkg:mc/sleep@1",
                    "with": {"seconds": 0.4},
                    "strategy": {"matrix": {"n": [1, 2, 3, 4, 5]}, "max_parallel": 1},
                },
            ],
        )
    )
    execution = wait_finished(start(client, version))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    shards = StepRun.objects.filter(execution=execution, kind="shard").order_by("started_at")
    intervals = [(s.started_at, s.finished_at) for s in shards]
    assert len(intervals) == 5 and all(s.attempt == 1 for s in shards)
    for (_, finished), (started, _) in itertools.pairwise(intervals):
        assert started >= finished  # one at a time, although two pool processes were free


def test_steps_go_to_the_queue_of_their_resource_class(
    worker: WorkerProcess, publish: Any, client: APIClient, worker_log_dir: Any
) -> None:
    worker.stop()  # only a worker on mc.large and mc.control now (the fixture restarts the shared one later)
    large_only = WorkerProcess(worker_log_dir, name="mc-large-only", queues="mc.large,mc.control").start()
    try:
        big = publish(
            workflow_doc(
                "big-one",
                [{"id": "crunch", "uses": "pkg:mc/echo@1", "with": {"message": 1}, "resource_class": "large"}],
            )
        )
        small = publish(workflow_doc("small-one", [{"id": "tiny", "uses": "pkg:mc/echo@1", "with": {"message": 1}}]))
        waiting = start(client, small)
        done = wait_finished(start(client, big))
        assert done.status == ExecutionStatus.SUCCEEDED
        assert steps_by_id(done)["crunch"].worker.startswith("mc-large-only@")
        time.sleep(1)
        tiny = steps_by_id(waiting)["tiny"]
        assert tiny.status == StepStatus.QUEUED and tiny.queue == "mc.small"  # nobody consumes mc.small
    finally:
        large_only.stop()
    worker.start()
    assert wait_finished(waiting).status == ExecutionStatus.SUCCEEDED  # picked up once mc.small has a worker
