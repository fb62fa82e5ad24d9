"""MC's own Prometheus metrics, counted by every process and summed up by ``/metrics``.

prometheus_client runs in multiprocess mode: each process (gunicorn worker, Celery pool
process, management command) writes its values to files of its own under
``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` reads all of them. The settings set that
variable, so import this module only after they are loaded (from apps, never from
``mc_project/__init__.py`` or ``mc_project/celery.py`` at import time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter, multiprocess

if TYPE_CHECKING:
    from policy.models import PolicyDecision

POLICY_DECISIONS = Counter(
    "mc_policy_decisions_total",
    "Policy decisions stored, by pack, stage, result and the tenant's mode for the pack.",
    ["pack", "stage", "result", "mode"],
)


def decisions_counted(decisions: Iterable[PolicyDecision]) -> None:
    """Count each decision once under its pack, stage, result and mode."""
    for decision in decisions:
        POLICY_DECISIONS.labels(
            pack=decision.pack, stage=str(decision.stage), result=str(decision.result), mode=str(decision.mode)
        ).inc()


def process_exited(pid: int) -> None:
    """Drop the live-gauge files of a process that exited.

    Its counters and histograms stay: a sum over processes must never go down, or
    Prometheus would read a counter reset. Operators empty the directory when they
    (re)start every process of a host (docs/operations.md).
    """
    multiprocess.mark_process_dead(pid)


def dead_process_files_remove(directory: Path) -> int:
    """Delete the metric files of processes that no longer run; return how many.

    For a fresh start of every process of a host (``mc_up``); the files of processes
    still running, another test run's or a live worker's, are left alone.
    """
    removed = 0
    for path in directory.glob("*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
