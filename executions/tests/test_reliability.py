"""Infrastructure faults with runs in flight: nothing is stranded, nothing finished runs again.

Faults are real: the database or the broker of one process is cut off behind a TCP proxy
(tests/proxy.py), queues lose their messages, workers are killed; recovery is done by a
real ``celery beat`` sending ``executions.recover_stalled`` as in production. Each test
fails on the engine before docs/reliability.md's protocol (see that page for the cases).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection

from executions.choices import ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.services import execution_create
from executions.tests.conftest import steps_by_id, wait_finished, workflow_doc
from mc_project.celery import app
from mc_project.tenancy.choices import Role
from mc_project.tenancy.services import token_create
from tests.factories import UserFactory
from tests.proxy import FaultProxy
from tests.workers import BeatProcess, WorkerProcess, purge_queues, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MARK = "executions.tests.stubborn:mark"


def _marking_doc(name: str, marks: Path, *, first_seconds: float = 3.0) -> dict[str, Any]:
    """a (slow) -> b: each step appends a line to ``marks`` when its package runs."""
    return workflow_doc(
        name,
        [
            {
                "id": "a",
                "uses": "pkg:mc/python@1",
                "with": {"callable": MARK, "args": {"path": str(marks), "token": "a", "seconds": first_seconds}},
            },
            {
                "id": "b",
                "uses": "pkg:mc/python@1",
                "needs": ["a"],
                "with": {"callable": MARK, "args": {"path": str(marks), "token": "b", "seconds": 0.1}},
            },
        ],
    )


def _runs_of(marks: Path, token: str) -> int:
    return marks.read_text().split().count(token) if marks.exists() else 0


def _database_url(port: int) -> str:
    conf = connection.settings_dict
    return f"postgres://{conf.get('USER') or 'postgres'}@127.0.0.1:{port}/{conf['NAME']}"


@pytest.fixture
def lone(session_worker: WorkerProcess, worker_log_dir: Path) -> Iterator[dict[str, Any]]:
    """The shared worker stopped (the next test that needs it starts it again), a beat, and a log dir.

    The queues start empty: a message an earlier test left (a killed worker's, a retry)
    would name a step id this test's rows reuse.
    """
    session_worker.stop()
    purge_queues(app)
    beat = BeatProcess(worker_log_dir, env={"MC_RECOVERY_INTERVAL": "1"}).start()
    started: list[WorkerProcess] = []
    yield {"workers": started, "log_dir": worker_log_dir}
    for process in started:
        process.stop()
    beat.stop()
    _end_stray_transactions()


def _end_stray_transactions() -> None:
    """End what a cut-off worker left open: the flush after the test must not wait on its locks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )


def _worker(lone: dict[str, Any], name: str, **kwargs: Any) -> WorkerProcess:
    process = WorkerProcess(lone["log_dir"], name=name, **kwargs).start()
    lone["workers"].append(process)
    return process


def test_a_database_outage_while_a_step_runs_and_records_strands_nothing_and_runs_nothing_twice(
    lone: dict[str, Any], publish: Any, tenant: Any, runner_user: Any, tmp_path: Path
) -> None:
    """The reported case: a worker at -c 1, a step of a few seconds, PostgreSQL gone for longer.

    Before: the recording failed, the task retried itself onto the same pool process, which
    took the retry for the original attempt and dropped it: the step stayed running for an
    hour. Or the retry marked the attempt lost and ran the package a second time.
    """
    postgres = FaultProxy(int(connection.settings_dict.get("PORT") or 5432))
    marks = tmp_path / "marks"
    try:
        _worker(lone, "mc-dbcut", concurrency=1, env={"MC_DATABASE_URL": _database_url(postgres.port)})
        version = publish(_marking_doc("db-outage", marks, first_seconds=3))
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        wait_until(lambda: _runs_of(marks, "a") == 1, message="step a to start its package")
        with postgres.down():
            time.sleep(9)  # the package ends at 3 s; recording fails in-process, then in a handed-on message
            assert steps_by_id(execution)["a"].status == StepStatus.RUNNING
        execution = wait_finished(execution, timeout=60)
    finally:
        postgres.close()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    steps = steps_by_id(execution)
    assert [attempt["outcome"] for attempt in steps["a"].attempts] == ["succeeded"], steps["a"].attempts
    assert steps["a"].lost_attempts == 0
    assert (_runs_of(marks, "a"), _runs_of(marks, "b")) == (1, 1)
    assert steps["a"].outputs == {"token": "a", "seconds": 3}


def test_a_run_created_while_the_broker_refuses_is_saved_and_sent_when_it_is_back(
    lone: dict[str, Any], live_server: Any, publish: Any, tenant: Any, tmp_path: Path
) -> None:
    """201 with the run and its first step waiting to be sent; the recovery beat sends it within seconds.

    The API's way to the broker is cut (the workers' and the beat's are not, as when the
    broker is unreachable from the API's host, or comes back right after). Before: the
    send after commit raised, the API answered 500 for a run it had saved, and the run
    waited an hour for the recovery beat.
    """
    _worker(lone, "mc-broker")
    redis_port = int(str(settings.CELERY_BROKER_URL).rsplit(":", 1)[1].split("/")[0])
    redis = FaultProxy(redis_port)
    marks = tmp_path / "marks"
    publish(_marking_doc("broker-outage", marks, first_seconds=0.1))
    user = UserFactory(membership__tenant=tenant, membership__role=Role.AUTHOR)
    _, token = token_create(user=user)
    try:
        with _broker_through(redis), redis.down():
            with httpx.Client(headers={"Authorization": f"Token {token}"}, timeout=30) as client:
                created = time.monotonic()
                response = client.post(f"{live_server.url}/api/executions", json={"workflow": "broker-outage"})
            assert response.status_code == 201, response.text
            body = response.json()
            assert {step["id"]: step["waiting_to_be_sent"] for step in body["steps"]} == {"a": True, "b": False}
            execution = wait_finished(Execution.objects.get(pk=body["id"]), timeout=30)
            sent_within = time.monotonic() - created
    finally:
        redis.close()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert sent_within < 15, f"finished {sent_within:.1f} s after it was created"
    assert not StepRun.objects.filter(execution=execution, send_pending=True).exists()
    assert (_runs_of(marks, "a"), _runs_of(marks, "b")) == (1, 1)


def test_messages_a_broker_lost_are_sent_again_within_seconds(
    lone: dict[str, Any], publish: Any, tenant: Any, runner_user: Any, tmp_path: Path
) -> None:
    """A Redis restarted without persistence loses every queued message: MC notices and sends them again.

    Before: queued steps waited for the visibility timeout plus a minute (an hour by default).
    """
    marks = tmp_path / "marks"
    version = publish(_marking_doc("broker-lost", marks, first_seconds=0.1))
    executions = [execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)[0] for _ in range(5)]
    purge_queues(app)  # what a restart without persistence leaves: nothing
    started = time.monotonic()
    _worker(lone, "mc-after-flush")
    for execution in executions:
        finished = wait_finished(execution, timeout=60)
        assert finished.status == ExecutionStatus.SUCCEEDED, finished.error
    assert time.monotonic() - started < 30
    assert (_runs_of(marks, "a"), _runs_of(marks, "b")) == (5, 5)


def test_a_whole_worker_killed_mid_step_is_recovered_within_seconds_with_the_default_visibility_timeout(
    lone: dict[str, Any], publish: Any, tenant: Any, runner_user: Any, tmp_path: Path
) -> None:
    """SIGKILL to a worker and its pool: its heartbeat stops, its attempt is lost, the step runs on the next worker.

    Before: the unacknowledged message came back after MC_BROKER_VISIBILITY_TIMEOUT (an hour).
    """
    marks = tmp_path / "marks"
    version = publish(_marking_doc("killed", marks, first_seconds=3))
    doomed = _worker(lone, "mc-doomed", concurrency=1)
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    wait_until(lambda: _runs_of(marks, "a") == 1, message="step a to start its package")
    doomed.kill()
    killed = time.monotonic()
    _worker(lone, "mc-heir")
    execution = wait_finished(execution, timeout=60)
    recovered = time.monotonic() - killed
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    steps = steps_by_id(execution)
    assert [attempt["outcome"] for attempt in steps["a"].attempts] == ["lost", "succeeded"]
    assert [attempt["outcome"] for attempt in steps["b"].attempts] == ["succeeded"]
    assert (_runs_of(marks, "a"), _runs_of(marks, "b")) == (2, 1)  # twice: its worker really was lost
    # MC_WORKER_LOST_AFTER (5 s in tests) + a recovery round + the step's own 3 s, not an hour.
    assert recovered < settings.MC_WORKER_LOST_AFTER + 20


@contextlib.contextmanager
def _broker_through(proxy: FaultProxy) -> Iterator[None]:
    """This process's Celery app sends through ``proxy`` (workers keep their own connection)."""
    original = app.conf.broker_url
    scheme, rest = str(original).split("://", 1)
    database = rest.split("/", 1)[1] if "/" in rest else "0"
    app.conf.broker_url = f"{scheme}://127.0.0.1:{proxy.port}/{database}"
    _reset_pools()
    try:
        yield
    finally:
        app.conf.broker_url = original
        _reset_pools()


def _reset_pools() -> None:
    app._pool = None  # kombu keeps one pool per broker URL: the next send picks the URL's own
    app.amqp._producer_pool = None
