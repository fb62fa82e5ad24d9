"""MC's own Prometheus metrics, counted by every process and summed up by ``/metrics``.

prometheus_client runs in multiprocess mode: each process (gunicorn worker, Celery pool
process, management command) writes its values to files of its own under
``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` reads all of them. The settings set that
variable, so import this module only after they are loaded (from apps, never from
``mc_project/__init__.py`` or ``mc_project/celery.py`` at import time).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from executions.models import StepRun
    from policy.models import PolicyDecision

POLICY_DECISIONS = Counter(
    "mc_policy_decisions_total",
    "Policy decisions stored, by pack, stage, result and the tenant's mode for the pack.",
    ["pack", "stage", "result", "mode"],
)

PUBLISH_TO_START = Histogram(
    "mc_publish_to_start_seconds",
    "Seconds from a run's creation (its root steps queued) to the first attempt of each root step.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
STEP_DURATION = Histogram(
    "mc_step_duration_seconds",
    "Seconds of each step attempt run by a worker, from its claim to its recorded outcome.",
    ["resource_class", "package"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
EXECUTIONS = Counter("mc_executions_total", "Runs that reached a final status, by that status.", ["status"])
RECEIPTS_SIGNED = Counter("mc_receipts_signed_total", "Receipts signed into their tenant's chain, by kind.", ["kind"])
RECEIPT_VERIFICATIONS = Counter(
    "mc_receipt_verifications_total", "Receipts verified, by result (ok or failed).", ["result"]
)
STEPS_RECOVERED = Counter(
    "mc_steps_recovered_total",
    "Steps the recovery beat sent again, by why: unsent (the broker had refused), lost (its worker was lost), "
    "unseen (no worker or queue held its message), joined (a matrix task whose chord was lost), "
    "aged (waited too long behind critical steps: sent again at the top).",
    ["reason"],
)
CANARY_ROLLBACKS = Counter(
    "mc_canary_rollbacks_total",
    "Canary releases rolled back, by tenant, workflow and trigger (analysis, webhook or manual).",
    ["tenant", "workflow", "trigger"],
)
# Start the series alerts and ratios read at 0 in every process, so that a first failure
# is an increase from 0 rather than a new series (which ``increase()`` cannot see).
for _result in ("ok", "failed"):
    RECEIPT_VERIFICATIONS.labels(result=_result)
for _status in ("succeeded", "failed", "cancelled"):
    EXECUTIONS.labels(status=_status)
for _reason in ("unsent", "lost", "unseen", "joined", "aged"):
    STEPS_RECOVERED.labels(reason=_reason)

_P = ParamSpec("_P")


class _Verdict(Protocol):
    @property
    def ok(self) -> bool: ...


_V = TypeVar("_V", bound=_Verdict)


def root_step_started(step: StepRun) -> None:
    """Observe publish-to-start when a root task's first attempt starts (docs/operations.md, "Metrics").

    A root task is queued in the transaction that creates its run, so its ``queued_at`` is
    when the run was created: no query needed. One observation per root task: a plain step,
    or the first shard of a matrix task.
    """
    if step.needs or step.attempt != 1 or step.shard_index != 0:
        return
    if step.queued_at is not None and step.attempt_started_at is not None:
        PUBLISH_TO_START.observe(max(0.0, (step.attempt_started_at - step.queued_at).total_seconds()))


def step_attempt_ended(step: StepRun) -> None:
    """Observe how long the attempt that ``step`` (as claimed) ran, by resource class and package."""
    if step.attempt_started_at is not None:
        seconds = (timezone.now() - step.attempt_started_at).total_seconds()
        STEP_DURATION.labels(resource_class=step.resource_class, package=step.uses).observe(max(0.0, seconds))


def execution_finished_counted(execution: Any, **_: Any) -> None:
    """Receiver of ``execution_finished``: count the run under its final status once it is committed."""
    status = str(execution.status)
    transaction.on_commit(lambda: EXECUTIONS.labels(status=status).inc())


def canary_rolled_back_counted(*, tenant: str, workflow: str, trigger: str) -> None:
    """Count a rollback once the transaction that rolled the release back commits."""
    transaction.on_commit(lambda: CANARY_ROLLBACKS.labels(tenant=tenant, workflow=workflow, trigger=trigger).inc())


def receipt_signed_counted(kind: str) -> None:
    RECEIPTS_SIGNED.labels(kind=kind).inc()


def verification_counted(verify: Callable[_P, _V]) -> Callable[_P, _V]:
    """Count every verdict ``verify`` returns under ``ok`` or ``failed``."""

    @functools.wraps(verify)
    def counted(*args: _P.args, **kwargs: _P.kwargs) -> _V:
        verdict = verify(*args, **kwargs)
        RECEIPT_VERIFICATIONS.labels(result="ok" if verdict.ok else "failed").inc()
        return verdict

    return counted


def decisions_counted(decisions: Iterable[PolicyDecision]) -> None:
    """Count each decision once under its pack, stage, result and mode."""
    for decision in decisions:
        POLICY_DECISIONS.labels(
            pack=decision.pack, stage=str(decision.stage), result=str(decision.result), mode=str(decision.mode)
        ).inc()


# Collectors that read the database at scrape time: facts that belong to no process, such
# as a canary release's state and weight (canary.metrics). Apps register them in ready().
_SCRAPE_COLLECTORS: list[Collector] = []


def scrape_collector_register(collector: Collector) -> None:
    if collector not in _SCRAPE_COLLECTORS:
        _SCRAPE_COLLECTORS.append(collector)


def metrics_export(request: HttpRequest) -> HttpResponse:
    """``/metrics``: every process's files summed, plus the scrape-time collectors."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in _SCRAPE_COLLECTORS:
        registry.register(collector)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


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
