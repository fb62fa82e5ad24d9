"""Canary analysis in-process: each arm's figures, the error budget, the verdict, and acting on it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from canary import services
from canary.analysis import ArmFigures, ErrorBudget, arm_figures, error_budget, nearest_rank, verdict_for
from canary.choices import Arm, CanaryEventKind, CanaryState, CanaryStrategy, Trigger, Verdict
from canary.models import CanaryEvent, CanaryRelease
from canary.signals import canary_run_finished
from canary.tests.factories import published_versions, release
from executions.choices import ExecutionMode, ExecutionStatus
from executions.models import Execution
from mc_project.metrics import CANARY_ROLLBACKS
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.services import receipt_sign
from receipts.verification import receipt_verify

pytestmark = pytest.mark.django_db

OK, FAILED = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED


def runs(
    canary: CanaryRelease,
    arm: str,
    *,
    status: str = OK,
    count: int = 1,
    seconds: float | list[float] = 0.1,
    at: datetime | None = None,
    mode: str = ExecutionMode.RUN,
) -> None:
    """``count`` finished runs of ``arm`` (rows only: analysis reads nothing else)."""
    end = at or timezone.now()
    durations = seconds if isinstance(seconds, list) else [seconds] * count
    version = canary.canary_version if arm == Arm.CANARY else canary.stable_version
    Execution.objects.bulk_create(
        Execution(
            tenant=canary.workflow.tenant,
            workflow=canary.workflow,
            workflow_version=version,
            mode=mode,
            status=status,
            inputs_digest="0" * 64,
            request_digest="0" * 64,
            canary_release=canary,
            arm=arm,
            started_at=end - timedelta(seconds=duration),
            finished_at=end,
        )
        for duration in durations
    )


def backdate(canary: CanaryRelease, seconds: float) -> CanaryRelease:
    """Pretend the release (and its current stage) started ``seconds`` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    CanaryRelease.objects.filter(pk=canary.pk).update(created_at=then, stage_started_at=then)
    canary.refresh_from_db()
    return canary


@pytest.fixture
def canary(tenant: Any) -> CanaryRelease:
    stable, new = published_versions(tenant)
    return backdate(release(stable, new, weight=50, min_sample=5, analysis_window_s=60, max_p95_ms=900), 3600)


# --- figures ----------------------------------------------------------------------------------


def test_each_arm_counts_its_finished_runs_in_the_window(canary: CanaryRelease) -> None:
    runs(canary, Arm.CANARY, count=3)
    runs(canary, Arm.CANARY, status=FAILED, count=2)
    runs(canary, Arm.STABLE, count=4)
    runs(canary, Arm.CANARY, status=ExecutionStatus.CANCELLED, count=5)  # stopped on purpose: no arm
    runs(canary, Arm.CANARY, mode=ExecutionMode.DRY_RUN, count=5)  # planned, never run
    runs(canary, Arm.CANARY, status=FAILED, count=7, at=timezone.now() - timedelta(seconds=120))  # before the window

    figures = arm_figures(canary, since=timezone.now() - timedelta(seconds=60))

    assert figures[Arm.CANARY].as_dict() == {"executions": 5, "failed": 2, "error_rate_pct": 40.0, "p95_ms": 100.0}
    assert figures[Arm.STABLE].executions == 4
    assert figures[Arm.STABLE].error_rate_pct == 0.0


def test_p95_is_the_nearest_rank_percentile_of_durations(canary: CanaryRelease) -> None:
    durations = [n / 10 for n in range(1, 21)]  # 0.1 s to 2.0 s
    runs(canary, Arm.CANARY, seconds=durations)

    figures = arm_figures(canary, since=timezone.now() - timedelta(seconds=60))

    assert figures[Arm.CANARY].p95_ms == pytest.approx(1900.0)  # the 19th of 20
    assert nearest_rank([d * 1000 for d in durations]) == pytest.approx(1900.0)
    assert nearest_rank([5.0]) == 5.0
    assert nearest_rank([1.0, 2.0]) == 2.0


def test_an_arm_without_runs_has_no_rate_and_no_p95(canary: CanaryRelease) -> None:
    figures = arm_figures(canary, since=timezone.now() - timedelta(seconds=60))

    assert figures[Arm.CANARY].as_dict() == {"executions": 0, "failed": 0, "error_rate_pct": None, "p95_ms": None}


def test_error_budget_counts_minutes_over_the_error_rate_budget(canary: CanaryRelease) -> None:
    now = timezone.now().replace(second=30, microsecond=0)
    for minutes_ago in (2, 3, 4):  # three bad minutes: 1 of 2 failed (50% > 1%)
        at = now - timedelta(minutes=minutes_ago)
        runs(canary, Arm.CANARY, status=FAILED, at=at)
        runs(canary, Arm.CANARY, at=at)
    at = now - timedelta(minutes=5)  # 1 of 200 failed (0.5%): within the 1% budget
    runs(canary, Arm.CANARY, status=FAILED, at=at)
    runs(canary, Arm.CANARY, count=199, at=at)
    runs(
        canary, Arm.STABLE, status=FAILED, count=10, at=now - timedelta(minutes=6)
    )  # stable's minutes are not the canary's

    budget = error_budget(canary)

    assert (budget.minutes, budget.spent_minutes, budget.executions) == (30, 3, 206)
    assert budget.remaining == pytest.approx(0.9)
    assert ErrorBudget(minutes=3, spent_minutes=5, executions=9).remaining == 0.0
    assert ErrorBudget(minutes=0, spent_minutes=0, executions=9).remaining == 1.0


# --- the verdict ------------------------------------------------------------------------------


def budgets(**overrides: Any) -> CanaryRelease:
    values = {
        "weight": 10,
        "strategy": CanaryStrategy.CANARY,
        "max_error_rate_pct": 1.0,
        "max_p95_ms": 900,
        "min_sample": 20,
        "analysis_window_s": 600,
        "error_budget_minutes": 30,
        "weight_steps": [],
    }
    return CanaryRelease(**{**values, **overrides})


NO_BUDGET_SPENT = ErrorBudget(minutes=30, spent_minutes=0, executions=0)


@pytest.mark.parametrize(
    ("release_", "canary", "budget", "age", "verdict", "reason"),
    [
        (budgets(), ArmFigures(0, 0, None), NO_BUDGET_SPENT, 9999, Verdict.HOLD, "waiting for traffic: 0 of 20"),
        # every run failed, but too few runs for a verdict: no traffic is not failure either
        (budgets(), ArmFigures(19, 19, 10.0), NO_BUDGET_SPENT, 9999, Verdict.HOLD, "waiting for traffic: 19 of 20"),
        (budgets(), ArmFigures(20, 1, 10.0), NO_BUDGET_SPENT, 5, Verdict.ROLLBACK, "error rate 5.0% is over"),
        (budgets(), ArmFigures(100, 1, 10.0), NO_BUDGET_SPENT, 5, Verdict.HOLD, "5 of 600 s of the window"),
        (budgets(), ArmFigures(20, 0, 901.0), NO_BUDGET_SPENT, 5, Verdict.ROLLBACK, "p95 duration 901 ms"),
        (budgets(), ArmFigures(20, 0, 900.0), NO_BUDGET_SPENT, 600, Verdict.PROMOTE, "budgets held for 600 s"),
        (
            budgets(weight_steps=[25, 50]),
            ArmFigures(20, 0, 10.0),
            NO_BUDGET_SPENT,
            600,
            Verdict.STEP,
            "weight 10 -> 25",
        ),
        (budgets(weight=50, weight_steps=[25, 50]), ArmFigures(20, 0, 10.0), NO_BUDGET_SPENT, 600, Verdict.PROMOTE, ""),
        (
            budgets(),
            ArmFigures(20, 0, 10.0),
            ErrorBudget(minutes=30, spent_minutes=30, executions=400),
            600,
            Verdict.ROLLBACK,
            "error budget spent: 30 of 30 minutes",
        ),
        (
            budgets(),
            ArmFigures(3, 0, 10.0),
            ErrorBudget(minutes=30, spent_minutes=30, executions=19),  # spent over too few runs
            600,
            Verdict.HOLD,
            "waiting for traffic",
        ),
        (
            budgets(error_budget_minutes=0),
            ArmFigures(20, 0, 10.0),
            ErrorBudget(minutes=0, spent_minutes=0, executions=400),
            600,
            Verdict.PROMOTE,
            "",
        ),
        (
            budgets(strategy=CanaryStrategy.BLUE_GREEN, weight=100),
            ArmFigures(20, 0, 10.0),
            NO_BUDGET_SPENT,
            600,
            Verdict.PROMOTE,
            "",
        ),
    ],
)
def test_verdict(
    release_: CanaryRelease, canary: ArmFigures, budget: ErrorBudget, age: float, verdict: str, reason: str
) -> None:
    decision = verdict_for(release_, canary=canary, budget=budget, stage_age_s=age)

    assert decision.verdict == verdict
    assert reason in decision.reason


# --- acting on it -----------------------------------------------------------------------------


def test_a_breach_rolls_back_with_an_event_a_receipt_and_a_metric(
    canary: CanaryRelease, django_capture_on_commit_callbacks: Any
) -> None:
    runs(canary, Arm.CANARY, status=FAILED, count=5)
    runs(canary, Arm.STABLE, count=5)
    counter = CANARY_ROLLBACKS.labels(tenant=canary.workflow.tenant.slug, workflow="checkout", trigger="analysis")
    before = counter._value.get()

    with django_capture_on_commit_callbacks(execute=True):
        analysis = services.canary_analyse(release_id=canary.pk)

    assert analysis is not None
    assert analysis.decision.verdict == Verdict.ROLLBACK
    canary.refresh_from_db()
    assert (canary.state, canary.weight) == (CanaryState.ROLLED_BACK, 0)
    assert canary.reason.startswith("error rate 100.0% is over the budget of 1%")
    assert canary.analysis["arms"]["canary"]["failed"] == 5
    assert canary.analysis["arms"]["stable"]["executions"] == 5
    event = CanaryEvent.objects.filter(release=canary).last()
    assert event is not None
    assert (event.kind, event.trigger, event.weight) == (CanaryEventKind.ROLLED_BACK, Trigger.ANALYSIS, 0)
    assert event.figures["verdict"] == "rollback"
    assert counter._value.get() == before + 1

    receipt = Receipt.objects.get(kind=ReceiptKind.ROLLBACK)
    assert receipt.record["trigger"] == "analysis"
    assert receipt.record["withdrawn"]["version"] == canary.canary_version.version
    assert receipt.record["restored"]["version"] == canary.stable_version.version
    assert receipt.record["analysis"]["arms"]["canary"]["error_rate_pct"] == 100.0
    signed = receipt_sign(receipt.pk)
    assert signed is not None
    verdict = receipt_verify(signed)
    assert verdict.ok, verdict
    names = [s["name"] for s in _statement(signed)["subject"]]
    assert names == ["withdrawn-workflow-snapshot", "restored-workflow-snapshot"]


def _statement(receipt: Receipt) -> dict[str, Any]:
    import base64
    import json

    envelope = receipt.envelope or {}
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def test_weight_steps_then_promotion(canary: CanaryRelease) -> None:
    CanaryRelease.objects.filter(pk=canary.pk).update(weight=10, weight_steps=[50, 100])
    runs(canary, Arm.CANARY, count=5)

    services.canary_analyse(release_id=canary.pk)
    canary.refresh_from_db()
    assert (canary.state, canary.weight) == (CanaryState.RUNNING, 50)

    services.canary_analyse(release_id=canary.pk)  # a new stage: its window has only begun
    canary.refresh_from_db()
    assert canary.weight == 50
    assert canary.analysis["verdict"] == "hold"
    assert "waiting for traffic: 0 of 5" in canary.analysis["reason"]  # runs before the step are the old stage's

    canary = backdate(canary, 120)
    runs(canary, Arm.CANARY, count=5)
    services.canary_analyse(release_id=canary.pk)
    canary.refresh_from_db()
    assert canary.weight == 100

    canary = backdate(canary, 120)
    runs(canary, Arm.CANARY, count=5)
    services.canary_analyse(release_id=canary.pk)
    canary.refresh_from_db()
    assert (canary.state, canary.weight) == (CanaryState.PROMOTED, 100)
    kinds = list(CanaryEvent.objects.filter(release=canary).values_list("kind", "trigger", "weight"))
    assert kinds == [
        ("started", "manual", 50),
        ("stepped", "analysis", 50),
        ("stepped", "analysis", 100),
        ("promoted", "analysis", 100),
    ]


def test_a_release_changed_while_measured_is_left_to_the_next_analysis(
    canary: CanaryRelease, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs(canary, Arm.CANARY, status=FAILED, count=5)
    measure = services.release_analyse

    def paused_meanwhile(release: CanaryRelease, *, now: datetime) -> Any:
        analysis = measure(release, now=now)
        services.canary_pause(release=release, actor=None, reason="an operator was quicker")
        return analysis

    monkeypatch.setattr(services, "release_analyse", paused_meanwhile)

    assert services.canary_analyse(release_id=canary.pk) is None
    canary.refresh_from_db()
    assert canary.state == CanaryState.PAUSED
    assert not Receipt.objects.filter(kind=ReceiptKind.ROLLBACK).exists()


def test_only_running_releases_are_analysed(canary: CanaryRelease, tenant: Any) -> None:
    stable, new = published_versions(tenant, name="other")
    other = release(stable, new)
    services.canary_pause(release=canary, actor=None)

    assert services.canary_analyse(release_id=canary.pk) is None
    assert services.canary_analyse(release_id=999_999) is None
    assert services.canary_analyse_running() == 1
    other.refresh_from_db()
    canary.refresh_from_db()
    assert other.analysis["verdict"] == "hold"
    assert canary.analysis is None


def test_resume_restarts_the_window(canary: CanaryRelease) -> None:
    runs(canary, Arm.CANARY, count=5)
    services.canary_pause(release=canary, actor=None)
    services.canary_resume(release=canary, actor=None)

    services.canary_analyse(release_id=canary.pk)

    canary.refresh_from_db()
    assert canary.state == CanaryState.RUNNING
    assert "waiting for traffic: 0 of 5" in canary.analysis["reason"]


def test_finished_canary_runs_ask_for_analysis(
    canary: CanaryRelease, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    asked: list[int] = []
    monkeypatch.setattr("canary.signals._analyse_soon", asked.append)
    runs(canary, Arm.CANARY, count=1)
    runs(canary, Arm.STABLE, count=1)
    runs(canary, Arm.CANARY, status=ExecutionStatus.CANCELLED)
    runs(canary, Arm.CANARY, mode=ExecutionMode.DRY_RUN)

    with django_capture_on_commit_callbacks(execute=True):
        for execution in Execution.objects.all():
            canary_run_finished(execution)
        canary_run_finished(Execution(status=OK, mode=ExecutionMode.RUN))  # routed by no release

    assert asked == [canary.pk]
