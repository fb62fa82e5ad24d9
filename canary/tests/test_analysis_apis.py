"""The canary API's analysis side: weight steps, the analysis and events of a release, analyse now;
the webhook's and the admin's records of what they did."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from canary.choices import Arm
from canary.models import CanaryEvent, CanaryRelease
from canary.tests.factories import published_versions, release
from canary.tests.test_analysis import backdate, runs
from executions.choices import ExecutionStatus
from mc_project.tenancy.choices import Role
from receipts.models import Receipt
from tests.asserts import assert_error
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(tenant: Any) -> list[Any]:
    return published_versions(tenant, count=2)


def test_create_with_weight_steps(publisher: APIClient, versions: list[Any]) -> None:
    response = publisher.post("/api/canaries", {"workflow": "checkout", "weight_steps": [25, 50, 100]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["weight"], body["weight_steps"], body["analysis"], body["analysed_at"]) == (
        10,
        [25, 50, 100],
        None,
        None,
    )
    assert body["stage_started_at"]


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"weight_steps": [50, 25]}, "/weight_steps"),  # falling
        ({"weight_steps": [10, 50]}, "/weight_steps"),  # not above the weight (10)
        ({"weight_steps": [50, 50]}, "/weight_steps"),  # repeated
        ({"weight_steps": [101]}, "/weight_steps/0"),
        ({"weight_steps": [0]}, "/weight_steps/0"),
        ({"weight_steps": ["half"]}, "/weight_steps/0"),
        ({"weight_steps": 50}, "/weight_steps"),
        ({"weight_steps": list(range(11, 32))}, "/weight_steps"),  # more than 20
        ({"strategy": "blue_green", "weight_steps": [100]}, "/weight_steps"),
    ],
)
def test_bad_weight_steps_are_400_and_start_nothing(
    publisher: APIClient, versions: list[Any], extra: dict[str, Any], path: str
) -> None:
    response = publisher.post("/api/canaries", {"workflow": "checkout", **extra}, format="json")
    assert_error(response, 400, "validation_failed", [path])
    assert not CanaryRelease.objects.exists()


def test_analyse_now_returns_the_analysis_and_acts_on_it(publisher: APIClient, versions: list[Any]) -> None:
    made = backdate(release(*versions, min_sample=2), 3600)
    runs(made, Arm.CANARY, status=ExecutionStatus.FAILED, count=2)
    runs(made, Arm.STABLE, count=3)

    response = publisher.post(f"/api/canaries/{made.pk}/analyse")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["weight"]) == ("rolled_back", 0)
    assert body["analysis"]["verdict"] == "rollback"
    assert body["analysis"]["arms"] == {
        "canary": {"executions": 2, "failed": 2, "error_rate_pct": 100.0, "p95_ms": 100.0},
        "stable": {"executions": 3, "failed": 0, "error_rate_pct": 0.0, "p95_ms": 100.0},
    }
    assert body["analysis"]["error_budget"] == {"minutes": 30, "spent_minutes": 1, "remaining": 0.9667}
    # an ended release is not analysed again
    assert_error(publisher.post(f"/api/canaries/{made.pk}/analyse"), 409, "canary_not_running", ["/state"])


def test_analyse_needs_the_publisher_role_and_the_tenant(
    make_client: Callable[..., APIClient], tenant: Any, other_tenant: Any, versions: list[Any]
) -> None:
    made = release(*versions)
    assert_error(make_client(Role.VIEWER, tenant).post(f"/api/canaries/{made.pk}/analyse"), 403, "permission_denied")
    assert_error(make_client(Role.ADMIN, other_tenant).post(f"/api/canaries/{made.pk}/analyse"), 404, "not_found")
    assert_error(make_client(Role.ADMIN, other_tenant).get(f"/api/canaries/{made.pk}/events"), 404, "not_found")
    assert_error(make_client(Role.ADMIN, tenant).post("/api/canaries/nope/analyse"), 404, "not_found")


def test_events_tell_the_story_oldest_first(
    publisher: APIClient, make_client: Callable[..., APIClient], tenant: Any, versions: list[Any]
) -> None:
    made = publisher.post("/api/canaries", {"workflow": "checkout"}, format="json").json()
    publisher.post(f"/api/canaries/{made['id']}/pause", {"reason": "looking"}, format="json")
    publisher.post(f"/api/canaries/{made['id']}/resume", format="json")
    publisher.post(f"/api/canaries/{made['id']}/rollback", {"reason": "enough"}, format="json")

    response = make_client(Role.VIEWER, tenant).get(f"/api/canaries/{made['id']}/events")

    assert response.status_code == 200, response.content
    page = response.json()
    assert page["count"] == 4
    story = [(e["kind"], e["trigger"], e["state"], e["weight"], e["reason"]) for e in page["results"]]
    assert story == [
        ("started", "manual", "running", 10, "canary at weight 10"),
        ("paused", "manual", "paused", 10, "looking"),
        ("resumed", "manual", "running", 10, ""),
        ("rolled_back", "manual", "rolled_back", 0, "enough"),
    ]
    assert {e["actor"] for e in page["results"]} == {publisher.user.username}  # type: ignore[attr-defined]
    receipt = Receipt.objects.get(kind="rollback")
    assert (receipt.record["trigger"], receipt.record["reason"]) == ("manual", "enough")


def test_admin_analyse_action_and_events_inline(tenant: Any, versions: list[Any]) -> None:
    user = UserFactory(membership__tenant=tenant, membership__role="operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    made = release(*versions)

    response = client.post(
        "/admin/canary/canaryrelease/", {"action": "analyse", "_selected_action": [made.pk]}, follow=True
    )

    assert f"#{made.pk}: hold: waiting for traffic: 0 of 20" in response.content.decode()
    page = client.get(f"/admin/canary/canaryrelease/{made.pk}/change/").content.decode()
    assert "canary at weight 10" in page  # the started event, inline
    listing = client.get("/admin/canary/canaryrelease/").content.decode()
    assert "hold: waiting for traffic" in listing


def test_a_webhook_rollback_records_its_figures(tenant: Any, versions: list[Any], settings: Any) -> None:
    from canary.tests.test_webhook import BREACH, SECRET, send

    settings.MC_CANARY_WEBHOOK_SECRET = SECRET
    made = release(*versions)

    response = send({**BREACH, "workflow": str(made.workflow_id), "metrics": {"error_rate_pct": 7.0}})

    assert response.status_code == 200, response.content
    event = CanaryEvent.objects.get(release=made, kind="rolled_back")
    assert (event.trigger, event.figures) == ("webhook", {"error_rate_pct": 7.0})
    receipt = Receipt.objects.get(kind="rollback")
    assert (receipt.record["trigger"], receipt.record["analysis"]) == ("webhook", {"error_rate_pct": 7.0})


def test_rollback_receipts_are_listed_by_kind(
    publisher: APIClient, make_client: Callable[..., APIClient], tenant: Any, versions: list[Any]
) -> None:
    made = release(*versions)
    publisher.post(f"/api/canaries/{made.pk}/rollback", {"reason": "enough"}, format="json")
    viewer = make_client(Role.VIEWER, tenant)

    rollbacks = viewer.get("/api/receipts?kind=rollback").json()
    both = viewer.get("/api/receipts?kind=rollback&kind=publish").json()
    of_workflow = viewer.get(f"/api/receipts?kind=rollback&workflow={made.workflow_id}&signed=false").json()

    assert [r["kind"] for r in rollbacks["results"]] == ["rollback"]
    assert both["count"] == 3  # the rollback and the two publishes
    assert of_workflow["count"] == 1
    assert_error(viewer.get("/api/receipts?kind=bogus"), 400, "validation_failed", ["/kind"])
    assert_error(viewer.get("/api/receipts?execution=not-a-uuid"), 400, "validation_failed", ["/execution"])
