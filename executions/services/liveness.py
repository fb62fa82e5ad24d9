"""Which workers live and which steps they hold, judged from their heartbeat rows.

Each worker writes a ``WorkerHeartbeat`` every ``MC_WORKER_HEARTBEAT_INTERVAL`` seconds
(executions/heartbeat.py) listing its pool processes and the tasks it holds. A worker
silent for ``MC_WORKER_LOST_AFTER`` is lost, and so is an attempt its worker no longer
lists. Whoever judges must itself have been watching: after an outage of the database
every heartbeat is old, and nobody is declared lost until the workers had time to report
again (``Liveness.judging``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from executions.models import StepRun, WorkerHeartbeat

# Clocks of the workers and of the database differ a little: an attempt that started this
# close to a worker's last heartbeat may not be in its report yet.
CLOCK_SLACK = timedelta(seconds=2)


def database_now() -> datetime:
    """The database's clock, the one every heartbeat is stamped with."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (now,) = cursor.fetchone()
    return now  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Liveness:
    """The workers' last heartbeats as one observer sees them at ``now``."""

    now: datetime
    beats: dict[str, WorkerHeartbeat]
    judging: bool
    """False while the observer has not watched for ``MC_WORKER_LOST_AFTER`` itself: no verdicts."""

    def _fresh(self, beat: WorkerHeartbeat) -> bool:
        return beat.seen_at >= self.now - timedelta(seconds=settings.MC_WORKER_LOST_AFTER)

    def lost(self, hostname: str) -> bool:
        """Whether the worker is gone: silent too long, or never seen."""
        if not self.judging:
            return False
        beat = self.beats.get(hostname)
        return beat is None or not self._fresh(beat)

    def holds(self, step: StepRun) -> bool:
        """Whether the worker of the step's current attempt still runs it."""
        if not self.judging:
            return True
        beat = self.beats.get(step.worker)
        started = step.attempt_started_at
        if beat is None:
            # A worker writes its first heartbeat as it starts taking messages: an attempt it
            # began a moment before is not evidence of loss yet.
            grace = timedelta(seconds=2 * settings.MC_WORKER_HEARTBEAT_INTERVAL) + CLOCK_SLACK
            return started is not None and started >= self.now - grace
        if not self._fresh(beat):
            return False
        if started is not None and started >= beat.seen_at - CLOCK_SLACK:
            return True  # too recent for the worker's last report
        return [step.task_id, step.worker_pid] in beat.active

    def held_task_ids(self) -> set[str]:
        """Task ids that live workers have received and not finished (running, prefetched, delayed)."""
        return {
            task_id for beat in self.beats.values() if not self.judging or self._fresh(beat) for task_id in beat.held
        }


def liveness_read(*, observer: str | None) -> Liveness:
    """The heartbeats as ``observer`` (a worker's node name; None: a caller outside the workers) sees them."""
    beats = {beat.hostname: beat for beat in WorkerHeartbeat.objects.all()}
    now = database_now()
    own = beats.get(observer) if observer is not None else None
    # An observer that has a heartbeat judges only while it beats, and has beaten without a
    # break for a whole MC_WORKER_LOST_AFTER (one that has none yet is not a worker, or is new).
    judging = own is None or (
        own.seen_at >= now - timedelta(seconds=3 * settings.MC_WORKER_HEARTBEAT_INTERVAL)
        and own.up_since <= now - timedelta(seconds=settings.MC_WORKER_LOST_AFTER)
    )
    return Liveness(now=now, beats=beats, judging=judging)


def same_worker_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live pool process of the worker this process belongs to.

    A pool process that was killed is gone, or a zombie until its worker reaps it.
    """
    if not pid:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, parent = fields[0], int(fields[1])
    return state not in ("Z", "X") and parent == os.getppid()


def worker_heartbeat_write(
    *,
    hostname: str,
    pid: int,
    queues: list[str],
    pool_pids: list[int],
    active: list[list[object]],
    held: list[str],
    started_at: datetime,
    continued: bool,
) -> None:
    """Record a worker's heartbeat, stamped with the database's clock.

    ``continued`` says the previous heartbeat was written on time; if not, the worker
    starts a new unbroken run (``up_since``).
    """
    now = database_now()
    fields = {
        "pid": pid,
        "queues": queues,
        "pool_pids": pool_pids,
        "active": active,
        "held": held,
        "started_at": started_at,
        "seen_at": now,
    }
    if not continued:
        fields["up_since"] = now
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults=fields, create_defaults={**fields, "up_since": now}
    )


def worker_heartbeat_remove(*, hostname: str) -> None:
    """A worker stops cleanly: it holds nothing any more."""
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()
