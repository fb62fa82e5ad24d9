"""Canary releases on a real worker: a failing canary rolls back by itself, a healthy one is
promoted (through its weight steps), one without traffic is not, blue/green switches and
switches back; /metrics shows the canary series, the rollback counted inside the worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from canary.choices import Arm, CanaryState
from canary.models import CanaryEvent, CanaryRelease
from canary.services import canary_create
from executions.models import Execution
from executions.services.create import execution_create
from executions.tests.conftest import wait_finished, workflow_doc
from mc_project.celery import app
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.verification import receipt_verify
from tests.workers import wait_until
from workflows.models import WorkflowVersion
from workflows.services import draft_save, workflow_publish

pytestmark = pytest.mark.slow

ECHO = [{"id": "greet", "uses": "pkg:mc/echo@1", "with": {"message": "hello"}}]
FAIL = [{"id": "greet", "uses": "pkg:mc/fail@1", "with": {"message": "the canary is broken"}}]


@pytest.fixture
def versions(
    publish: Callable[[dict[str, Any]], WorkflowVersion], runner_user: Any
) -> Callable[[list[dict[str, Any]]], tuple[WorkflowVersion, WorkflowVersion]]:
    """A workflow whose 1.0.0 echoes, and a 1.0.1 with the tasks given."""

    def make(canary_tasks: list[dict[str, Any]]) -> tuple[WorkflowVersion, WorkflowVersion]:
        stable = publish(workflow_doc("checkout", ECHO))
        workflow = stable.workflow
        draft_save(workflow=workflow, actor=runner_user, manifest=workflow_doc("checkout", canary_tasks))
        return stable, workflow_publish(workflow=workflow, actor=runner_user).version

    return make


def unpinned(version: WorkflowVersion, actor: Any, count: int, prefix: str = "run") -> list[Execution]:
    """``count`` unpinned runs of the workflow, each with its own idempotency key, waited for."""
    made = [
        execution_create(
            tenant=version.workflow.tenant,
            actor=actor,
            workflow=version.workflow,
            idempotency_key=f"{prefix}-{time.monotonic_ns()}-{n}",
        )[0]
        for n in range(count)
    ]
    return [wait_finished(execution) for execution in made]


def state_of(release: CanaryRelease, state: str, timeout: float = 20) -> CanaryRelease:
    def reached() -> CanaryRelease | None:
        release.refresh_from_db()
        return release if release.state == state else None

    return wait_until(reached, timeout=timeout, message=f"release {release.pk} to be {state}")  # type: ignore[no-any-return]


def window_passed(release: CanaryRelease) -> None:
    """Pretend the current stage started one analysis window ago (the runs stay inside the window)."""
    start = timezone.now() - timedelta(seconds=release.analysis_window_s + 1)
    CanaryRelease.objects.filter(pk=release.pk).update(stage_started_at=start)


def analysed_by_the_beat(release: CanaryRelease) -> CanaryRelease:
    """Run the beat's task on the worker and wait until it has analysed ``release``."""
    release.refresh_from_db()
    before = release.analysed_at
    app.send_task("canary.analyse_running", queue="mc.control")

    def analysed() -> CanaryRelease | None:
        release.refresh_from_db()
        return release if release.analysed_at and release.analysed_at != before else None

    return wait_until(analysed, timeout=20, message="the beat to analyse the release")  # type: ignore[no-any-return]


def metrics(client: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples /metrics shows, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: Any) -> float | None:
    return samples.get((name, frozenset((key, str(value)) for key, value in labels.items())))


def test_a_failing_canary_rolls_back_by_itself(worker: Any, versions: Any, runner_user: Any, client: Any) -> None:
    stable, canary = versions(FAIL)
    who = {"tenant": stable.workflow.tenant.slug, "workflow": "checkout"}
    rollbacks_before = sample(metrics(client), "mc_canary_rollbacks_total", **who, trigger="analysis") or 0.0
    release = canary_create(
        workflow=stable.workflow,
        stable_version=stable,
        canary_version=canary,
        actor=runner_user,
        weight=50,
        min_sample=3,
    )
    ran = unpinned(stable, runner_user, 12)  # about 6 to the canary: it breaches at the 3rd failure

    release = state_of(release, CanaryState.ROLLED_BACK)
    assert release.weight == 0
    assert release.reason.startswith("error rate 100.0% is over the budget of 1%")
    failures = [e for e in ran if e.arm == Arm.CANARY]
    assert failures
    assert all(e.status == "failed" and e.workflow_version_id == canary.pk for e in failures)
    assert all(e.status == "succeeded" for e in ran if e.arm == Arm.STABLE)
    event = CanaryEvent.objects.get(release=release, kind="rolled_back")
    assert event.trigger == "analysis"
    assert event.figures["arms"]["canary"]["executions"] >= 3

    # Routing changed: every unpinned run now gets the stable version.
    after = unpinned(stable, runner_user, 4, prefix="after")
    assert {(e.arm, e.workflow_version_id, e.status) for e in after} == {(Arm.STABLE, stable.pk, "succeeded")}

    receipt = wait_until(
        lambda: Receipt.objects.filter(kind=ReceiptKind.ROLLBACK, signed_at__isnull=False).first(), timeout=15
    )
    assert receipt.record["trigger"] == "analysis"
    assert receipt.record["withdrawn"]["version"] == "1.0.1"
    assert receipt_verify(receipt).ok

    samples = metrics(client)
    # counted inside the worker's pool process, summed by the API's /metrics
    assert sample(samples, "mc_canary_rollbacks_total", **who, trigger="analysis") == rollbacks_before + 1
    this = {**who, "release": release.pk}
    assert sample(samples, "mc_canary_state", **this, state="rolled_back") == 1.0
    assert sample(samples, "mc_canary_state", **this, state="running") == 0.0
    assert sample(samples, "mc_canary_weight", **this) == 0.0
    assert sample(samples, "mc_canary_error_ratio", **this, arm="canary") == 1.0
    assert sample(samples, "mc_canary_window_executions", **this, arm="canary") >= 3  # type: ignore[operator]
    assert sample(samples, "mc_canary_p95_seconds", **this, arm="canary") is not None
    assert sample(samples, "mc_canary_error_budget_remaining", **this) is not None
    assert (sample(samples, "mc_executions_total", status="failed") or 0) >= len(failures)
    assert (sample(samples, "mc_receipts_signed_total", kind="rollback") or 0) >= 1


def test_a_healthy_canary_steps_up_and_is_promoted(worker: Any, versions: Any, runner_user: Any) -> None:
    stable, canary = versions([{"id": "greet", "uses": "pkg:mc/echo@1", "with": {"message": "new"}}])
    release = canary_create(
        workflow=stable.workflow,
        stable_version=stable,
        canary_version=canary,
        actor=runner_user,
        weight=50,
        weight_steps=[100],
        min_sample=2,
        analysis_window_s=60,
    )
    unpinned(stable, runner_user, 8)

    def analysed() -> CanaryRelease | None:  # after each canary run, on the worker
        release.refresh_from_db()
        return release if release.analysis else None

    wait_until(analysed, timeout=10)
    assert (release.weight, release.analysis["verdict"]) == (50, "hold")  # the stage is younger than the window
    window_passed(release)
    release = analysed_by_the_beat(release)
    assert (release.state, release.weight) == (CanaryState.RUNNING, 100)

    ran = unpinned(stable, runner_user, 2, prefix="stepped")
    assert {e.arm for e in ran} == {Arm.CANARY}  # weight 100: all traffic
    window_passed(release)
    release = analysed_by_the_beat(release)
    assert release.state == CanaryState.PROMOTED
    assert list(CanaryEvent.objects.filter(release=release).values_list("kind", flat=True)) == [
        "started",
        "stepped",
        "promoted",
    ]
    # Promoted: routing ends and the latest published version (the canary) runs.
    [last] = unpinned(stable, runner_user, 1, prefix="promoted")
    assert (last.workflow_version_id, last.arm) == (canary.pk, "")


def test_a_canary_without_traffic_is_never_promoted(worker: Any, versions: Any, runner_user: Any) -> None:
    stable, canary = versions([{"id": "greet", "uses": "pkg:mc/echo@1", "with": {"message": "new"}}])
    release = canary_create(
        workflow=stable.workflow,
        stable_version=stable,
        canary_version=canary,
        actor=runner_user,
        weight=100,
        min_sample=3,
        analysis_window_s=60,
    )
    window_passed(release)
    release = analysed_by_the_beat(release)
    assert release.state == CanaryState.RUNNING
    assert release.analysis["reason"] == "waiting for traffic: 0 of 3 canary runs in the window"

    unpinned(stable, runner_user, 2)  # some traffic, still below the sample
    window_passed(release)
    release = analysed_by_the_beat(release)
    assert release.state == CanaryState.RUNNING
    assert release.analysis["verdict"] == "hold"


def test_blue_green_switches_and_switches_back(worker: Any, versions: Any, runner_user: Any) -> None:
    stable, canary = versions([{"id": "greet", "uses": "pkg:mc/echo@1", "with": {"message": "green"}}])
    release = canary_create(
        workflow=stable.workflow,
        stable_version=stable,
        canary_version=canary,
        actor=runner_user,
        strategy="blue_green",
        min_sample=100,
    )
    green = unpinned(stable, runner_user, 3)
    assert {(e.arm, e.workflow_version_id, e.status) for e in green} == {(Arm.CANARY, canary.pk, "succeeded")}

    client = APIClient()
    client.force_authenticate(runner_user)
    response = client.post(f"/api/canaries/{release.pk}/rollback", {"reason": "switch back"}, format="json")
    assert response.status_code == 200, response.content
    blue = unpinned(stable, runner_user, 3, prefix="blue")
    assert {(e.arm, e.workflow_version_id, e.status) for e in blue} == {(Arm.STABLE, stable.pk, "succeeded")}
    receipt = wait_until(
        lambda: Receipt.objects.filter(kind=ReceiptKind.ROLLBACK, signed_at__isnull=False).first(), timeout=15
    )
    assert (receipt.record["trigger"], receipt.record["actor"]) == ("manual", runner_user.username)
