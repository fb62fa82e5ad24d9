"""The recovery beat's verdicts, one by one: what it sends again and what it leaves alone.

No worker runs here (the shared one is stopped): rows and heartbeats are set up as a fault
left them, the real Redis queues say which messages wait, and the test reads what was sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from executions.choices import StepStatus
from executions.models import StepRun, WorkerHeartbeat
from executions.planner import CRITICAL_PRIORITY, SLACK_PRIORITY
from executions.services import execution_create, stalled_steps_recover
from executions.services.claims import step_claim
from executions.services.recovery import broker_waiting
from executions.services.steplog import timestamp
from executions.tests.conftest import workflow_doc
from mc_project.celery import app
from tests.workers import WorkerProcess, purge_queues

pytestmark = [pytest.mark.django_db(transaction=True)]

LOST_AFTER = timedelta(seconds=settings.MC_WORKER_LOST_AFTER)


@pytest.fixture
def quiet(session_worker: WorkerProcess) -> Iterator[None]:
    """No worker takes messages, and the queues start empty."""
    session_worker.stop()
    purge_queues(app)
    yield
    purge_queues(app)


@pytest.fixture
def step(quiet: None, publish: Any, tenant: Any, runner_user: Any) -> StepRun:
    version = publish(workflow_doc("recover", [{"id": "only", "uses": "pkg:mc/echo@1", "with": {"message": 1}}]))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    return StepRun.objects.get(execution=execution)


def _beat(
    hostname: str, *, silent: float, active: Sequence[list[Any]] = (), held: Sequence[str] = (), up: float = 600
) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={
            "pid": 1,
            "queues": ["mc.small"],
            "pool_pids": [2],
            "active": list(active),
            "held": list(held),
            "started_at": now - timedelta(seconds=up),
            "up_since": now - timedelta(seconds=up),
            "seen_at": now - timedelta(seconds=silent),
        },
    )


def _running_on(step: StepRun, worker: str, *, started: float = 30) -> None:
    purge_queues(app)  # its message was taken by that worker
    StepRun.objects.filter(pk=step.pk).update(
        status=StepStatus.RUNNING,
        attempt=1,
        worker=worker,
        worker_pid=2,
        attempt_started_at=timezone.now() - timedelta(seconds=started),
    )


def test_a_running_step_of_a_silent_worker_is_sent_again(step: StepRun) -> None:
    _running_on(step, "gone@host")
    _beat("gone@host", silent=LOST_AFTER.total_seconds() + 1)
    assert stalled_steps_recover() == 1
    assert step.task_id in broker_waiting(["mc.small"])  # type: ignore[operator]


def test_a_running_step_its_live_worker_lists_is_left_alone(step: StepRun) -> None:
    _running_on(step, "busy@host")
    _beat("busy@host", silent=0.5, active=[[step.task_id, 2]], held=[step.task_id])
    assert stalled_steps_recover() == 0
    assert step.task_id not in broker_waiting(["mc.small"])  # type: ignore[operator]


def test_a_running_step_its_live_worker_no_longer_lists_is_sent_again(step: StepRun) -> None:
    """The attempt ended without a record (its process survived): the worker is alive, the attempt is not."""
    _running_on(step, "busy@host")
    _beat("busy@host", silent=0.5, active=[], held=[])
    assert stalled_steps_recover() == 1


def test_a_running_step_of_a_worker_not_beating_yet_waits_for_its_first_heartbeat(step: StepRun) -> None:
    """A new worker may claim a step just before it writes its first heartbeat: no verdict on that alone."""
    _running_on(step, "new@host", started=0.2)
    assert stalled_steps_recover() == 0
    _running_on(step, "new@host", started=60)  # long enough: it would have beaten by now
    assert stalled_steps_recover() == 1


def test_no_verdict_from_an_observer_that_has_not_watched_long_enough(step: StepRun) -> None:
    """After a database outage every heartbeat is old: the sweeper waits until workers could report again."""
    _running_on(step, "gone@host")
    _beat("gone@host", silent=LOST_AFTER.total_seconds() + 30)
    _beat("control@host", silent=0.2, up=1)  # the observer itself just started beating again
    assert stalled_steps_recover(observer="control@host") == 0
    _beat("control@host", silent=0.2, up=LOST_AFTER.total_seconds() + 1)
    assert stalled_steps_recover(observer="control@host") == 1


def test_a_queued_step_whose_message_is_gone_is_sent_again_and_one_that_waits_is_not(step: StepRun) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.MC_UNSEEN_AFTER + 1)
    StepRun.objects.filter(pk=step.pk).update(queued_at=long_ago)
    assert step.task_id in broker_waiting(["mc.small"])  # type: ignore[operator]
    assert stalled_steps_recover() == 0  # its message waits in the queue
    purge_queues(app)  # a broker restarted without persistence
    assert stalled_steps_recover() == 1
    assert step.task_id in broker_waiting(["mc.small"])  # type: ignore[operator]


def test_a_queued_step_a_live_worker_holds_is_not_sent_again(step: StepRun) -> None:
    StepRun.objects.filter(pk=step.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    purge_queues(app)  # a worker took it (prefetched, or a retry with a countdown)
    _beat("holder@host", silent=0.5, held=[step.task_id])
    assert stalled_steps_recover() == 0
    _beat("holder@host", silent=LOST_AFTER.total_seconds() + 1, held=[step.task_id])  # ...and died with it
    assert stalled_steps_recover() == 1


def test_a_step_waiting_to_be_sent_is_sent_and_unmarked(step: StepRun) -> None:
    purge_queues(app)
    StepRun.objects.filter(pk=step.pk).update(send_pending=True)
    assert stalled_steps_recover() == 1
    step.refresh_from_db()
    assert not step.send_pending
    assert step.task_id in broker_waiting(["mc.small"])  # type: ignore[operator]


def test_a_step_waiting_too_long_behind_critical_steps_is_sent_again_at_the_top(step: StepRun) -> None:
    """Aging: a step off its run's critical path waits at most MC_PRIORITY_AGING behind others' critical steps."""
    StepRun.objects.filter(pk=step.pk).update(
        priority=SLACK_PRIORITY, queued_at=timezone.now() - timedelta(seconds=settings.MC_PRIORITY_AGING + 1)
    )
    assert _listed("mc.small") == [step.task_id]  # its first message, in the top list (sent before the update)
    assert stalled_steps_recover() == 1
    step.refresh_from_db()
    assert step.priority == CRITICAL_PRIORITY
    assert _listed("mc.small") == [step.task_id, step.task_id]
    assert stalled_steps_recover() == 0  # once


def _listed(queue: str) -> list[str]:
    """Task ids in the top-priority list of ``queue``, oldest first."""
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        key = (getattr(channel, "global_keyprefix", "") or "") + queue
        return [json.loads(raw)["headers"]["id"] for raw in reversed(channel.client.lrange(key, 0, -1))]


STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _log(client: Any, step: StepRun) -> str:
    response = client.get(f"/api/executions/{step.execution_id}/steps/{step.step_id}/logs", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def test_a_lost_attempt_of_a_silent_worker_says_so_in_the_log(step: StepRun, author: Any) -> None:
    _running_on(step, "gone@host")
    _beat("gone@host", silent=LOST_AFTER.total_seconds() + 1)
    seen = WorkerHeartbeat.objects.get(hostname="gone@host").seen_at
    assert stalled_steps_recover() == 1
    assert step_claim(step.pk, worker="next@host") is not None  # as the worker that takes the message again
    log = _log(author, step)
    assert re.fullmatch(
        rf"--- attempt 1 on gone@host ---\n{STAMP} ERROR worker_lost: attempt 1 was lost: worker gone@host silent"
        rf" since {re.escape(timestamp(seen))} \(it ran on gone@host, pid 2\); delivered again to next@host",
        log,
    ), log
    step.refresh_from_db()
    assert [a["outcome"] for a in step.attempts] == ["lost"] and step.attempt == 2 and step.log == log


def test_a_lost_attempt_its_live_worker_no_longer_lists_says_so_in_the_log(step: StepRun, author: Any) -> None:
    _running_on(step, "busy@host")
    StepRun.objects.filter(pk=step.pk).update(log=f"--- attempt 1 on busy@host ---\n{timestamp(timezone.now())} hello")
    _beat("busy@host", silent=0.5, active=[], held=[])
    assert stalled_steps_recover() == 1
    assert step_claim(step.pk, worker="next@host") is not None
    lines = _log(author, step).splitlines()
    assert lines[:2][0] == "--- attempt 1 on busy@host ---" and lines[1].endswith(" hello")  # one header
    assert len(lines) == 3 and "ERROR worker_lost: attempt 1 was lost: worker busy@host no longer lists it" in lines[2]
    assert "(it ran on busy@host, pid 2)" in lines[2]


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("same_process", [False, True])
def test_a_lost_attempt_on_the_same_worker_says_why_in_the_log(step: StepRun, author: Any, same_process: bool) -> None:
    """The message came back to the worker that ran the attempt: its pool process died, or it is this one."""
    pid = os.getpid() if same_process else _dead_pid()
    evidence = "redelivered to the process that ran it" if same_process else f"pool process {pid} of same@host is gone"
    _running_on(step, "same@host")
    StepRun.objects.filter(pk=step.pk).update(worker_pid=pid)
    assert step_claim(step.pk, worker="same@host") is not None
    log = _log(author, step)
    assert f"ERROR worker_lost: attempt 1 was lost: {evidence}" in log, log
    assert f"(it ran on same@host, pid {pid}); delivered again to same@host" in log
