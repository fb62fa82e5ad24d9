"""The canary API: create with defaults, actions, roles, tenant scoping, and every bad input as a 4xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from canary.models import CanaryRelease
from canary.tests.factories import published_versions, release
from mc_project.tenancy.choices import Role
from tests.asserts import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(tenant: Any) -> list[Any]:
    return published_versions(tenant, count=3)


def test_create_defaults_to_the_latest_against_the_one_before(publisher: APIClient, versions: list[Any]) -> None:
    response = publisher.post("/api/canaries", {"workflow": "checkout"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/api/canaries/{body['id']}"
    assert (body["stable_version"], body["canary_version"]) == ("1.0.1", "1.0.2")
    assert (body["strategy"], body["weight"], body["state"], body["max_p95_ms"]) == ("canary", 10, "running", 900)
    assert body["workflow"] == str(versions[0].workflow_id) and body["created_by"] == publisher.user.username  # type: ignore[attr-defined]


def test_create_with_everything_given(publisher: APIClient, versions: list[Any]) -> None:
    body = {
        "workflow": str(versions[0].workflow_id),
        "stable_version": "1.0.0",
        "canary_version": "1.0.2",
        "strategy": "blue_green",
        "max_error_rate_pct": 2.5,
        "max_p95_ms": 1500,
        "min_sample": 50,
        "analysis_window_s": 300,
        "error_budget_minutes": 10,
    }
    response = publisher.post("/api/canaries", body, format="json")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["weight"] == 100 and made["min_sample"] == 50 and made["stable_version"] == "1.0.0"


BAD_BODIES = [
    ({}, 400, "validation_failed", ["/workflow"]),
    ({"workflow": "checkout", "weight": 101}, 400, "validation_failed", ["/weight"]),
    ({"workflow": "checkout", "weight": "lots"}, 400, "validation_failed", ["/weight"]),
    ({"workflow": "checkout", "strategy": "yolo"}, 400, "validation_failed", ["/strategy"]),
    ({"workflow": "checkout", "min_sample": 0}, 400, "validation_failed", ["/min_sample"]),
    ({"workflow": "checkout", "max_error_rate_pct": 120}, 400, "validation_failed", ["/max_error_rate_pct"]),
    ({"workflow": "checkout", "colour": "blue"}, 400, "validation_failed", ["/colour"]),
    ({"workflow": "checkout", "canary_version": "9.9.9"}, 400, "validation_failed", ["/canary_version"]),
    ({"workflow": "checkout", "stable_version": "1.0.2"}, 400, "validation_failed", ["/canary_version"]),
    ({"workflow": "checkout", "canary_version": "1.0.0"}, 400, "validation_failed", ["/stable_version"]),
    ({"workflow": "checkout", "strategy": "blue_green", "weight": 30}, 400, "validation_failed", ["/weight"]),
    ({"workflow": "nope"}, 404, "not_found", ["/workflow"]),
    ([1, 2], 400, "validation_failed", None),
]


@pytest.mark.parametrize(("body", "status", "code", "paths"), BAD_BODIES)
def test_bad_create_requests_are_4xx_and_create_nothing(
    publisher: APIClient, versions: list[Any], body: Any, status: int, code: str, paths: list[str] | None
) -> None:
    assert_error(publisher.post("/api/canaries", body, format="json"), status, code, paths)
    assert not CanaryRelease.objects.exists()


def test_a_second_active_release_is_409(publisher: APIClient, versions: list[Any]) -> None:
    assert publisher.post("/api/canaries", {"workflow": "checkout"}, format="json").status_code == 201
    assert_error(publisher.post("/api/canaries", {"workflow": "checkout"}, format="json"), 409, "canary_active")


def test_actions(publisher: APIClient, versions: list[Any]) -> None:
    made = release(versions[1], versions[2])
    url = f"/api/canaries/{made.pk}"
    paused = publisher.post(f"{url}/pause", {"reason": "investigating"}, format="json")
    assert paused.status_code == 200, paused.content
    assert paused.json()["state"] == "paused" and paused.json()["reason"] == "investigating"
    assert publisher.post(f"{url}/resume").json()["state"] == "running"
    rolled = publisher.post(f"{url}/rollback").json()
    assert (rolled["state"], rolled["weight"]) == ("rolled_back", 0) and rolled["ended_at"]
    assert_error(publisher.post(f"{url}/promote"), 409, "canary_transition_illegal", ["/state"])
    assert_error(publisher.post(f"{url}/resume"), 409, "canary_transition_illegal")
    assert_error(publisher.post(f"{url}/pause", {"why": "x"}, format="json"), 400, "validation_failed", ["/why"])
    again = release(versions[1], versions[2])
    promoted = publisher.post(f"/api/canaries/{again.pk}/promote").json()
    assert (promoted["state"], promoted["weight"]) == ("promoted", 100)
    assert publisher.get(url).json()["state"] == "rolled_back"


def test_list_is_filtered_and_paginated(publisher: APIClient, tenant: Any, versions: list[Any]) -> None:
    ended = release(versions[0], versions[1])
    publisher.post(f"/api/canaries/{ended.pk}/rollback")
    active = release(versions[1], versions[2])
    other = published_versions(tenant, name="billing")
    release(*other)
    body = publisher.get("/api/canaries", {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    running = publisher.get("/api/canaries", {"state": "running", "workflow": str(versions[0].workflow_id)}).json()
    assert [item["id"] for item in running["results"]] == [active.pk]
    by_name = publisher.get("/api/canaries", {"workflow_name": "billing"}).json()
    assert by_name["count"] == 1
    assert_error(publisher.get("/api/canaries", {"state": "sideways"}), 400, "validation_failed", ["/state"])
    assert_error(publisher.get("/api/canaries", {"workflow": "not-a-uuid"}), 400, "validation_failed", ["/workflow"])


def test_roles(make_client: Callable[..., APIClient], tenant: Any, versions: list[Any]) -> None:
    made = release(versions[1], versions[2])
    for role in (Role.VIEWER, Role.AUTHOR):
        client = make_client(role, tenant)
        assert client.get("/api/canaries").json()["count"] == 1
        assert client.get(f"/api/canaries/{made.pk}").status_code == 200
        assert_error(client.post("/api/canaries", {"workflow": "checkout"}, format="json"), 403, "permission_denied")
        for action in ("pause", "resume", "promote", "rollback"):
            assert_error(client.post(f"/api/canaries/{made.pk}/{action}"), 403, "permission_denied")
    made.refresh_from_db()
    assert made.state == "running"
    assert_error(APIClient().get("/api/canaries"), 401, "not_authenticated")


def test_another_tenants_release_is_404(outsider: APIClient, versions: list[Any]) -> None:
    made = release(versions[1], versions[2])
    assert outsider.get("/api/canaries").json()["count"] == 0
    assert_error(outsider.get(f"/api/canaries/{made.pk}"), 404, "not_found")
    for action in ("pause", "resume", "promote", "rollback"):
        assert_error(outsider.post(f"/api/canaries/{made.pk}/{action}"), 404, "not_found")
    assert_error(outsider.post("/api/canaries", {"workflow": "checkout"}, format="json"), 404, "not_found")
    assert_error(
        outsider.post("/api/canaries", {"workflow": str(versions[0].workflow_id)}, format="json"), 404, "not_found"
    )
    made.refresh_from_db()
    assert made.state == "running"
    assert_error(outsider.get("/api/canaries/999999"), 404, "not_found")
