"""The heartbeat of a Celery worker: a thread of its main process that writes, every
``MC_WORKER_HEARTBEAT_INTERVAL`` seconds, which pool processes it has and which tasks it
holds (executions/services/liveness.py reads them). Started and stopped by
mc_project/celery.py on ``worker_ready`` and ``worker_shutdown``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)


def _snapshot(requests: Any) -> list[Any]:
    """A copy of one of the worker's request sets, which the main thread changes as we read."""
    for _ in range(5):
        try:
            return list(requests)
        except RuntimeError:  # changed size during iteration
            continue
    return []


class Heartbeat(threading.Thread):
    """Writes the worker's heartbeat row until stopped; a database outage only delays it."""

    def __init__(self, consumer: Any) -> None:
        super().__init__(name="mc-heartbeat", daemon=True)
        self.consumer = consumer
        self.hostname = str(consumer.hostname)
        self.started_at = timezone.now()
        self.stopping = threading.Event()
        self.last_written = 0.0
        self.failing_since = 0.0

    def run(self) -> None:
        interval = settings.MC_WORKER_HEARTBEAT_INTERVAL
        while True:
            self.beat()
            if self.stopping.wait(interval):
                break
        connection.close()

    def beat(self) -> None:
        from celery.worker import state

        from executions.services.liveness import worker_heartbeat_write

        interval = settings.MC_WORKER_HEARTBEAT_INTERVAL
        active = _snapshot(state.active_requests)
        reserved = _snapshot(state.reserved_requests)
        continued = self.last_written > 0 and time.monotonic() - self.last_written < 3 * interval
        try:
            worker_heartbeat_write(
                hostname=self.hostname,
                pid=os.getpid(),
                queues=self._queues(),
                pool_pids=self._pool_pids(),
                active=[[request.id, request.worker_pid] for request in active],
                held=sorted({request.id for request in (*active, *reserved)}),
                started_at=self.started_at,
                continued=continued,
            )
        except Exception as exc:  # the database is down or unreachable: keep beating, say so once
            if not self.failing_since:
                self.failing_since = time.monotonic()
                logger.warning("worker heartbeat not written (%s: %s); retrying", type(exc).__name__, exc)
            connection.close()
            return
        if self.failing_since:
            logger.info("worker heartbeat written again after %.1f s", time.monotonic() - self.failing_since)
            self.failing_since = 0.0
        self.last_written = time.monotonic()

    def _pool_pids(self) -> list[int]:
        pool = getattr(getattr(self.consumer, "controller", None), "pool", None)
        try:
            pids = list((pool.info or {}).get("processes") or []) if pool is not None else []
        except Exception:  # a pool restarting its processes
            pids = []
        return [int(pid) for pid in pids] or [os.getpid()]

    def _queues(self) -> list[str]:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        try:
            return sorted(queue.name for queue in task_consumer.queues) if task_consumer is not None else []
        except Exception:
            return []

    def stop(self) -> None:
        """Stop beating and remove the row: a worker that stopped cleanly holds nothing."""
        from executions.services.liveness import worker_heartbeat_remove

        self.stopping.set()
        self.join(timeout=5)
        try:
            worker_heartbeat_remove(hostname=self.hostname)
        except Exception:
            logger.warning("could not remove the heartbeat of %s", self.hostname, exc_info=True)
        finally:
            connection.close()
