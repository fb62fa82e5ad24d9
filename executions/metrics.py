"""Scale signals for ``/metrics``, read at scrape time: each queue's backlog, and the steps
waiting on a quota slot per resource class.

Neither belongs to a process, so neither is counted in the multiprocess files. The backlog
is the figure the chart's KEDA objects scale workers on (deploy/helm/mc) and the alert
``MCQueueBacklogGrowing`` watches: the messages waiting in the queue's Redis lists, one
list per broker priority (Celery names them ``mc.small``, ``mc.small\\x06\\x163``, ...).
Messages a worker already took are not waiting: they are not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from executions.choices import StepStatus
from executions.models import StepRun
from executions.packages import RESOURCE_CLASSES
from mc_project.celery import app as celery_app

logger = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://")


def broker_backlog(queues: Iterable[str]) -> dict[str, int] | None:
    """Messages waiting in each queue, over all its priority lists; None for a broker MC cannot count."""
    if not str(settings.CELERY_BROKER_URL).startswith(REDIS_SCHEMES):
        return None
    queues = sorted(set(queues))
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        prefix = getattr(channel, "global_keyprefix", "") or ""
        pipe = channel.client.pipeline(transaction=False)
        for queue in queues:
            for priority in channel.priority_steps:
                pipe.llen(prefix + channel._q_for_pri(queue, priority))
        lengths = iter(pipe.execute())
        steps = len(channel.priority_steps)
        return {queue: sum(next(lengths) for _ in range(steps)) for queue in queues}


def quota_waiting() -> dict[str, int]:
    """Steps waiting in line for a slot of their tenant's concurrency quota, per resource class."""
    waiting = dict.fromkeys(RESOURCE_CLASSES, 0)
    rows = (
        StepRun.objects.filter(status__in=(StepStatus.QUEUED, StepStatus.RETRYING), quota_held_since__isnull=False)
        .values("resource_class")
        .annotate(steps=Count("id"))
    )
    for row in rows:
        waiting[row["resource_class"]] = row["steps"]
    return waiting


class ScaleCollector(Collector):
    """``mc_queue_backlog{queue}`` and ``mc_quota_waiting_steps{resource_class}``."""

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering the collector reads nothing."""
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        backlog, waiting = _families()
        try:
            counts = broker_backlog(settings.CELERY_TASK_QUEUES)
        except Exception:  # /metrics answers with the other series whatever the broker does
            logger.exception("queue backlog skipped: the broker could not be read")
            counts = None
        for queue, messages in (counts or {}).items():
            backlog.add_metric([queue], float(messages))
        try:
            held = quota_waiting()
        except Exception:  # nor the database
            logger.exception("quota waiting skipped: the steps could not be read")
            held = {}
        for resource_class, steps in held.items():
            waiting.add_metric([resource_class], float(steps))
        yield backlog
        yield waiting


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "mc_queue_backlog",
            "Messages waiting in each queue's broker lists (every priority), read at scrape time: "
            "what KEDA scales each queue's workers on.",
            labels=["queue"],
        ),
        GaugeMetricFamily(
            "mc_quota_waiting_steps",
            "Steps waiting in line for a slot of their tenant's concurrency quota, per resource class.",
            labels=["resource_class"],
        ),
    )
