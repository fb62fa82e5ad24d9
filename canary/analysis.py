"""Canary analysis: each arm's figures over the window, the error budget, and the verdict.

A release is analysed when an execution of its canary arm finishes (``canary.analyse``,
sent on commit) and by the ``canary.analyse_running`` beat. The figures count runs
(``mode=run``) that finished ``succeeded`` or ``failed`` within the window: the last
``analysis_window_s`` seconds, but never before the current stage started (creation,
resume or the last weight step). Cancelled runs were stopped on purpose and count for
neither arm.

The verdict, in order (``verdict_for``, a pure function):

1. **Roll back** when the canary arm has at least ``min_sample`` runs in the window and
   its error rate or p95 duration is over budget, or when it has spent its error budget
   (``error_budget_minutes`` minutes in which its error rate was over budget, since the
   release started, over at least ``min_sample`` runs).
2. **Hold** while the canary arm has fewer than ``min_sample`` runs in the window (no
   traffic is not success), or the stage is younger than the window.
3. **Step up** to the next of ``weight_steps``, or **promote** when none is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, F, Q
from django.db.models.functions import TruncMinute

from canary.choices import LATENCY_PERCENTILE, Arm, CanaryStrategy, Verdict
from canary.models import CanaryRelease
from executions.choices import ExecutionMode, ExecutionStatus
from executions.models import Execution

COUNTED = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED)


@dataclass(frozen=True)
class ArmFigures:
    """One arm's runs in the window: how many, how many failed, and their p95 duration."""

    executions: int = 0
    failed: int = 0
    p95_ms: float | None = None

    @property
    def error_rate_pct(self) -> float | None:
        return 100.0 * self.failed / self.executions if self.executions else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.error_rate_pct
        return {
            "executions": self.executions,
            "failed": self.failed,
            "error_rate_pct": None if rate is None else round(rate, 3),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
        }


@dataclass(frozen=True)
class ErrorBudget:
    """Minutes the canary arm spent over its error-rate budget since the release started."""

    minutes: int
    spent_minutes: int
    executions: int  # canary runs since the release started: the sample behind ``spent_minutes``

    @property
    def remaining(self) -> float:
        """1.0 untouched, 0.0 spent; 1.0 when the release has no error budget (0 minutes)."""
        if not self.minutes:
            return 1.0
        return max(0.0, 1.0 - self.spent_minutes / self.minutes)

    def as_dict(self) -> dict[str, Any]:
        return {"minutes": self.minutes, "spent_minutes": self.spent_minutes, "remaining": round(self.remaining, 4)}


@dataclass(frozen=True)
class Decision:
    """What analysis decided, and why in words an operator reads in the event log."""

    verdict: str
    reason: str
    weight: int | None = None  # the weight to step up to


@dataclass(frozen=True)
class Analysis:
    at: datetime
    window_start: datetime
    arms: dict[str, ArmFigures]
    budget: ErrorBudget
    decision: Decision

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "window": {
                "start": self.window_start.isoformat(),
                "seconds": round((self.at - self.window_start).total_seconds(), 3),
            },
            "arms": {arm: figures.as_dict() for arm, figures in self.arms.items()},
            "error_budget": self.budget.as_dict(),
            "verdict": self.decision.verdict,
            "reason": self.decision.reason,
        }


def release_analyse(release: CanaryRelease, *, now: datetime) -> Analysis:
    """Measure ``release`` as the database holds it at ``now`` and decide (reads only)."""
    window_start = max(release.stage_started_at, now - timedelta(seconds=release.analysis_window_s))
    arms = arm_figures(release, since=window_start)
    budget = error_budget(release)
    decision = verdict_for(
        release, canary=arms[Arm.CANARY], budget=budget, stage_age_s=(now - release.stage_started_at).total_seconds()
    )
    return Analysis(at=now, window_start=window_start, arms=arms, budget=budget, decision=decision)


def verdict_for(release: CanaryRelease, *, canary: ArmFigures, budget: ErrorBudget, stage_age_s: float) -> Decision:
    """The verdict on a running release from its canary arm's figures (see the module's docstring)."""
    sample, needed = canary.executions, release.min_sample
    if sample >= needed:
        rate = canary.error_rate_pct or 0.0
        if rate > release.max_error_rate_pct:
            return Decision(
                Verdict.ROLLBACK,
                f"error rate {rate:.1f}% is over the budget of {release.max_error_rate_pct:g}% "
                f"({canary.failed} of {sample} canary runs failed in the window)",
            )
        if canary.p95_ms is not None and canary.p95_ms > release.max_p95_ms:
            return Decision(
                Verdict.ROLLBACK,
                f"p95 duration {canary.p95_ms:.0f} ms is over the budget of {release.max_p95_ms} ms "
                f"({sample} canary runs in the window)",
            )
    if budget.minutes and budget.executions >= needed and budget.spent_minutes >= budget.minutes:
        return Decision(
            Verdict.ROLLBACK,
            f"error budget spent: {budget.spent_minutes} of {budget.minutes} minutes over the error-rate budget",
        )
    if sample < needed:
        return Decision(Verdict.HOLD, f"waiting for traffic: {sample} of {needed} canary runs in the window")
    if stage_age_s < release.analysis_window_s:
        return Decision(
            Verdict.HOLD,
            f"budgets hold; {stage_age_s:.0f} of {release.analysis_window_s} s of the window observed",
        )
    held = f"budgets held for {release.analysis_window_s} s over {sample} canary runs"
    following = next_weight(release)
    if following is not None:
        return Decision(Verdict.STEP, f"{held}: weight {release.weight} -> {following}", weight=following)
    return Decision(Verdict.PROMOTE, held)


def next_weight(release: CanaryRelease) -> int | None:
    if release.strategy != CanaryStrategy.CANARY:
        return None
    return next((step for step in release.weight_steps if step > release.weight), None)


# --- figures --------------------------------------------------------------------------------------


class _PercentileDisc(Aggregate):
    """PostgreSQL's ``percentile_disc``: the nearest-rank percentile, computed in the database."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"


def _counted(release: CanaryRelease, **filters: Any) -> Any:
    return Execution.objects.filter(
        canary_release=release, mode=ExecutionMode.RUN, status__in=COUNTED, finished_at__isnull=False, **filters
    )


def arm_figures(release: CanaryRelease, *, since: datetime) -> dict[str, ArmFigures]:
    """Each arm's runs that finished since ``since``: count, failures and p95 duration."""
    runs = _counted(release, finished_at__gte=since)
    failed = Count("id", filter=Q(status=ExecutionStatus.FAILED))
    figures = {arm: ArmFigures() for arm in Arm.values}
    if connection.vendor == "postgresql":
        duration = F("finished_at") - F("started_at")
        p95 = _PercentileDisc(duration, fraction=LATENCY_PERCENTILE, output_field=DurationField())
        for row in runs.values("arm").annotate(n=Count("id"), failed=failed, p95=p95).order_by():
            p95_ms = row["p95"].total_seconds() * 1000 if row["p95"] is not None else None
            figures[row["arm"]] = ArmFigures(executions=row["n"], failed=row["failed"], p95_ms=p95_ms)
        return figures
    # SQLite (the embedded default): the same nearest-rank percentile, in Python.
    durations: dict[str, list[float]] = {arm: [] for arm in Arm.values}
    failures: dict[str, int] = dict.fromkeys(Arm.values, 0)
    for arm, status, started, finished in runs.values_list("arm", "status", "started_at", "finished_at"):
        durations[arm].append((finished - started).total_seconds() * 1000 if started else 0.0)
        failures[arm] += status == ExecutionStatus.FAILED
    for arm, values in durations.items():
        if values:
            figures[arm] = ArmFigures(executions=len(values), failed=failures[arm], p95_ms=nearest_rank(values))
    return figures


def nearest_rank(values: list[float], fraction: float = LATENCY_PERCENTILE) -> float:
    """The smallest value with at least ``fraction`` of the values at or below it (as ``percentile_disc``)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def error_budget(release: CanaryRelease) -> ErrorBudget:
    """Count the minutes since the release started in which the canary arm's error rate was over budget."""
    runs = _counted(release, arm=Arm.CANARY, finished_at__gte=release.created_at)
    if not release.error_budget_minutes:
        return ErrorBudget(minutes=0, spent_minutes=0, executions=runs.count())
    minutes = (
        runs.annotate(minute=TruncMinute("finished_at"))
        .values("minute")
        .annotate(n=Count("id"), failed=Count("id", filter=Q(status=ExecutionStatus.FAILED)))
        .order_by()
    )
    executions = spent = 0
    for row in minutes:
        executions += row["n"]
        spent += row["failed"] * 100.0 > release.max_error_rate_pct * row["n"]
    return ErrorBudget(minutes=release.error_budget_minutes, spent_minutes=spent, executions=executions)
