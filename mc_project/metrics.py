"""MC's own Prometheus metrics, counted by every process and summed up by ``/metrics``.

prometheus_client runs in multiprocess mode: each process (gunicorn worker, Celery pool
process, management command) writes its values to files of its own under
``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` reads all of them. The settings set that
variable, so import this module only after they are loaded (from apps, never from
``mc_project/__init__.py`` or ``mc_project/celery.py`` at import time).
"""

from __future__ import annotations

from collections.abc import Iterable
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
