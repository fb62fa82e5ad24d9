"""The raw-Celery baseline the engine benches compare MC with: no Django, no database.

A minimal standalone Celery app configured like MC's workers where it matters for
speed: Redis broker (db 10) and result backend (db 9), JSON, ``acks_late``, prefetch 1,
one queue, and a worker started as ``celery -A bench.baseline_celery worker -c 2 -P prefork``
by the benches (see ``bench/engine_setup.py``). Unlike MC's workers it sends no task events.

Tasks:

* ``noop(x)`` returns ``x`` (members and callbacks of chords and chains);
* ``mark_start(key, submitted)`` pushes ``[submitted, time.time()]`` onto the Redis list
  ``key`` as soon as it runs: the bench reads it with BLPOP, so waiting costs no polling;
* ``sleep_for(seconds)`` sleeps, for the uneven-DAG (makespan) baseline.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import redis
from celery import Celery

BROKER_URL = "redis://127.0.0.1:6379/10"
RESULT_BACKEND = "redis://127.0.0.1:6379/9"
MARKS_URL = RESULT_BACKEND  # mark_start writes next to the results
QUEUE = "bench.baseline"

# Not the current app: in a bench process, MC's engine sends with celery.current_app.
app = Celery("baseline_celery", broker=BROKER_URL, backend=RESULT_BACKEND, set_as_current=False)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_create_missing_queues=True,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@cache
def marks() -> redis.Redis:
    """One Redis client per process (each pool process builds its own after the fork)."""
    return redis.Redis.from_url(MARKS_URL)


@app.task(name="baseline.noop")
def noop(x: Any = None) -> Any:
    return x


@app.task(name="baseline.mark_start", ignore_result=True)
def mark_start(key: str, submitted: float) -> None:
    started = time.time()
    marks().rpush(key, json.dumps([submitted, started]))


@app.task(name="baseline.sleep_for")
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def mark_wait(key: str, timeout: float = 120.0) -> tuple[float, float]:
    """Block until ``mark_start`` pushed onto ``key``; return (submitted, started) as epoch seconds."""
    popped = marks().blpop([key], timeout=timeout)
    if popped is None:
        raise TimeoutError(f"no mark on {key} after {timeout} s: is the baseline worker running?")
    submitted, started = json.loads(popped[1])
    return float(submitted), float(started)


def purge() -> None:
    """Drop waiting messages, results and marks left by an earlier run."""
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)
    marks().flushdb()
