"""Workers die under MC: a whole worker SIGKILLed (its process group, as a node or container
dies) and replaced, and one pool process SIGKILLed mid-step (issue 18, item 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from .checks import check_recovery
from .cluster import Cluster

pytestmark = pytest.mark.fault

RUNS = 25
# Issue 18's target: every run finishes within 2 minutes plus its steps' own time.
DEADLINE = 120 + 30


def test_whole_worker_killed_and_replaced(cluster: Cluster) -> None:
    """SIGKILL the small worker's process group mid-step, then start a replacement (a new pod
    with a new name, as Kubernetes would): the steps it held run again, within minutes."""
    runs = cluster.start_runs("faults-diamond", RUNS, label="worker-kill")
    cluster.wait_steps_running(list(runs), 8)
    time.sleep(0.5)
    fault_started = time.time()
    cluster.workers["small"].kill()
    time.sleep(2)
    cluster.start_workers({"small": cluster.worker("small", suffix="-replacement")})
    fault_ended = time.time()
    check_recovery(
        cluster,
        runs,
        scenario="Whole small worker SIGKILLed, replacement started",
        fault_started=fault_started,
        fault_ended=fault_ended,
        deadline=DEADLINE,
        workers_lost=True,
    )


def _busy_pool_processes(worker_pid: int) -> list[int]:
    """Pool processes of a worker that are running a step (they have a child: the step's program)."""
    pool = subprocess.run(["ps", "-o", "pid=", "--ppid", str(worker_pid)], capture_output=True, text=True)
    busy = []
    for pid in map(int, pool.stdout.split()):
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
        if children.stdout.split():
            busy.append(pid)
    return busy


def test_pool_process_killed(cluster: Cluster) -> None:
    """SIGKILL two pool processes running steps: the worker replaces them and the steps run again."""
    runs = cluster.start_runs("faults-diamond", 12, label="pool-kill")
    cluster.wait_steps_running(list(runs), 4)
    worker = cluster.workers["small"]
    busy = _busy_pool_processes(worker.pid)
    assert busy, cluster.report("no pool process of the small worker was running a step")
    fault_started = time.time()
    for pid in busy[:2]:
        os.kill(pid, signal.SIGKILL)
    fault_ended = time.time()
    check_recovery(
        cluster,
        runs,
        scenario="Pool process SIGKILLed mid-step",
        fault_started=fault_started,
        fault_ended=fault_ended,
        deadline=60,
        workers_lost=True,
    )
    assert worker.alive, worker.tail()
