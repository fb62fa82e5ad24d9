"""The scale signals on /metrics: each queue's backlog over its priority lists, and the steps
waiting on a quota slot per resource class (executions/metrics.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from kombu import Exchange, Queue

from executions.metrics import broker_backlog
from executions.models import StepRun
from executions.services import execution_create
from executions.tests.conftest import workflow_doc
from mc_project.celery import app as celery_app
from mc_project.tests.test_metrics import scrape


@pytest.fixture
def private_queue() -> Iterator[str]:
    """A queue no worker listens on; its lists are deleted afterwards."""
    name = f"mc.test-backlog-{uuid.uuid4().hex[:8]}"
    yield name
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        for priority in channel.priority_steps:
            channel.client.delete(channel._q_for_pri(name, priority))


def test_the_backlog_counts_every_priority_list_of_a_queue(private_queue: str) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail("the test suite runs on Redis (MC_BROKER_URL)")
    queue = Queue(private_queue, Exchange(private_queue), routing_key=private_queue)
    with celery_app.connection_for_write() as conn, conn.Producer() as producer:
        for priority in (0, 0, 3, 3, 3, 9):
            producer.publish(
                {"n": priority}, exchange=queue.exchange, routing_key=private_queue, declare=[queue], priority=priority
            )
    assert broker_backlog([private_queue, "mc.test-empty"]) == {private_queue: 6, "mc.test-empty": 0}


def test_metrics_export_the_backlog_of_every_queue(db: Any) -> None:
    samples = scrape(Client())
    for queue in settings.CELERY_TASK_QUEUES:
        assert ("mc_queue_backlog", frozenset({"queue": queue}.items())) in samples


def test_metrics_export_the_steps_waiting_on_a_quota_slot(publish: Any, tenant: Any, runner_user: Any) -> None:
    def waiting(resource_class: str) -> float:
        return scrape(Client())[("mc_quota_waiting_steps", frozenset({"resource_class": resource_class}.items()))]

    before = {resource_class: waiting(resource_class) for resource_class in ("small", "medium", "large")}
    tasks = [{"id": f"s{index}", "uses": "pkg:mc/sleep@1", "with": {"seconds": 0.1}} for index in range(3)]
    version = publish(workflow_doc("quota-gauge", tasks))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    # In line for a slot, as the quota check leaves a step that cannot start (no message left
    # this test's transaction).
    StepRun.objects.filter(execution=execution).update(quota_held_since=timezone.now())
    assert waiting("small") - before["small"] == 3
    assert waiting("medium") == before["medium"]
    assert waiting("large") == before["large"]
