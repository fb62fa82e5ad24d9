"""The executions API without workers: bad input gets a clear 4xx and changes nothing,
lists are scoped, filtered and paginated, plans and progress have their shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.models import Execution, StepRun
from executions.services import execution_create
from mc_project.tenancy.choices import Role
from tests.asserts import assert_error
from tests.factories import UserFactory, manifest
from workflows.services import workflow_create, workflow_publish

pytestmark = pytest.mark.django_db

INPUTS = {
    "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
    "count": {"type": "integer", "required": True},
    "dry": {"type": "boolean", "default": False},
}


@pytest.fixture
def version(tenant: Any) -> Any:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest(inputs=INPUTS))
    return workflow_publish(workflow=workflow, actor=user).version


@pytest.fixture
def author(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


def post(client: APIClient, body: Any, **headers: Any) -> Any:
    return client.post("/api/executions", body, format="json", **headers)


BAD_BODIES = [
    ({"workflow": "hello-world", "inputs": {"count": "3"}}, 400, "invalid_inputs", ["/inputs/count"]),
    ({"workflow": "hello-world", "inputs": {}}, 400, "invalid_inputs", ["/inputs/count"]),
    ({"workflow": "hello-world", "inputs": {"count": 1, "regoin": "eu"}}, 400, "invalid_inputs", ["/inputs/regoin"]),
    ({"workflow": "hello-world", "inputs": {"count": 1, "region": "mars"}}, 400, "invalid_inputs", ["/inputs/region"]),
    ({"workflow": "hello-world", "inputs": {"count": True}}, 400, "invalid_inputs", ["/inputs/count"]),
    ({"workflow": "hello-world", "inputs": {"count": 1.5}}, 400, "invalid_inputs", ["/inputs/count"]),
    ({"workflow": "hello-world", "inputs": [1, 2]}, 400, "validation_failed", ["/inputs"]),
    ({"workflow": "hello-world", "inputs": {"count": 1}, "mode": "yolo"}, 400, "validation_failed", ["/mode"]),
    ({"workflow": "hello-world", "inputs": {"count": 1}, "colour": "red"}, 400, "validation_failed", ["/colour"]),
    ({"inputs": {"count": 1}}, 400, "validation_failed", ["/workflow"]),
    (
        {"workflow": "hello-world", "inputs": {"count": 1}, "idempotency_key": ""},
        400,
        "validation_failed",
        ["/idempotency_key"],
    ),
    ({"workflow": "nope", "inputs": {"count": 1}}, 404, "not_found", []),
    ({"workflow": "hello-world", "version": "9.9.9", "inputs": {"count": 1}}, 404, "not_found", []),
    ("not an object", 400, None, None),
]


@pytest.mark.parametrize(("body", "status", "code", "paths"), BAD_BODIES)
def test_bad_execution_requests_get_a_clear_error_and_create_nothing(
    author: APIClient, version: Any, body: Any, status: int, code: str | None, paths: list[str] | None
) -> None:
    response = post(author, body)
    assert response.status_code == status, response.content
    if code is not None:
        assert_error(response, status, code, paths)
    assert Execution.objects.count() == 0 and StepRun.objects.count() == 0


def test_bad_idempotency_header_is_400(author: APIClient, version: Any) -> None:
    response = post(author, {"workflow": "hello-world", "inputs": {"count": 1}}, HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert_error(response, 400, "validation_failed", ["/headers/Idempotency-Key"])
    assert Execution.objects.count() == 0


def test_unpublished_workflow_cannot_run(author: APIClient, tenant: Any) -> None:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow_create(tenant=tenant, actor=user, manifest=manifest(name="draft-only"))
    assert_error(post(author, {"workflow": "draft-only"}), 404, "not_published")


def test_viewers_cannot_start_or_cancel_and_outsiders_see_nothing(
    make_client: Callable[..., APIClient], tenant: Any, version: Any, outsider: APIClient
) -> None:
    viewer = make_client(Role.VIEWER, tenant)
    assert_error(post(viewer, {"workflow": "hello-world", "inputs": {"count": 1}}), 403, "permission_denied")
    execution, _ = execution_create(tenant=tenant, actor=None, workflow=version.workflow, inputs={"count": 1})
    assert viewer.get(f"/api/executions/{execution.pk}").status_code == 200
    assert_error(viewer.post(f"/api/executions/{execution.pk}/cancel"), 403, "permission_denied")
    for path in ("", "/progress", "/steps", "/logs", "/steps/fetch", "/steps/fetch/logs"):
        assert outsider.get(f"/api/executions/{execution.pk}{path}").status_code == 404, path
    assert outsider.get("/api/executions").json()["count"] == 0
    assert_error(post(outsider, {"workflow": "hello-world", "inputs": {"count": 1}}), 404, "not_found")


def test_start_returns_the_execution_with_steps_and_location(author: APIClient, version: Any) -> None:
    response = post(author, {"workflow": str(version.workflow_id), "inputs": {"count": 2}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == f"/api/executions/{body['id']}"
    assert body["version"] == "1.0.0" and body["status"] == "running" and body["mode"] == "run"
    assert body["inputs"] == {"count": 2, "region": "eu", "dry": False}  # defaults filled in
    assert body["snapshot"] == f"sha256:{version.digest}"
    statuses = {step["id"]: step["status"] for step in body["steps"]}
    assert statuses == {"fetch": "queued", "left": "pending", "right": "pending", "report": "pending"}
    assert body["plan"]["stages"] == [["fetch"], ["left", "right"], ["report"]]


def test_list_is_filtered_and_paginated(author: APIClient, version: Any, tenant: Any) -> None:
    for count in range(5):
        execution_create(tenant=tenant, actor=None, workflow=version.workflow, inputs={"count": count})
    execution_create(tenant=tenant, actor=None, workflow=version.workflow, inputs={"count": 9}, mode="dry_run")
    page = author.get("/api/executions?page_size=2").json()
    assert page["count"] == 6 and len(page["results"]) == 2 and page["next"]
    assert author.get("/api/executions?status=planned").json()["count"] == 1
    assert author.get("/api/executions?status=running&mode=run").json()["count"] == 5
    assert author.get(f"/api/executions?workflow={version.workflow_id}").json()["count"] == 6
    assert author.get("/api/executions?workflow_name=other").json()["count"] == 0
    assert author.get("/api/executions?created_after=2999-01-01T00:00:00Z").json()["count"] == 0
    assert_error(author.get("/api/executions?status=bogus"), 400, "validation_failed")
    assert_error(author.get("/api/executions?created_after=yesterday"), 400, "validation_failed")


def test_progress_steps_and_logs(author: APIClient, version: Any, tenant: Any) -> None:
    execution, _ = execution_create(tenant=tenant, actor=None, workflow=version.workflow, inputs={"count": 1})
    progress = author.get(f"/api/executions/{execution.pk}/progress").json()
    assert progress["steps_total"] == 4 and progress["steps_done"] == 0 and progress["terminal"] is False
    assert progress["steps"]["queued"] == 1 and progress["steps"]["pending"] == 3
    steps = author.get(f"/api/executions/{execution.pk}/steps?page_size=2").json()
    assert steps["count"] == 4 and [s["id"] for s in steps["results"]] == ["fetch", "left"]
    assert_error(author.get(f"/api/executions/{execution.pk}/steps?kind=weird"), 400, "validation_failed")
    assert_error(author.get(f"/api/executions/{execution.pk}/steps/nope"), 404, "no_such_step")
    assert_error(author.get(f"/api/executions/{execution.pk}/steps/fetch?shard=x"), 400, "validation_failed")
    log = author.get(f"/api/executions/{execution.pk}/steps/fetch/logs")
    assert log.status_code == 200 and log["Content-Type"].startswith("text/plain")
    assert author.get("/api/executions/00000000-0000-0000-0000-000000000000").status_code == 404


def test_plan_rejects_bad_inputs_and_unknown_versions(author: APIClient, version: Any) -> None:
    base = f"/api/workflows/{version.workflow_id}/versions"
    assert_error(
        author.post(f"{base}/1.0.0/plan", {"inputs": {"count": "x"}}, format="json"),
        400,
        "invalid_inputs",
        ["/inputs/count"],
    )
    assert_error(author.post(f"{base}/2.0.0/plan", {}, format="json"), 404, "not_found")
    assert_error(author.post(f"{base}/1.0.0/plan", {"input": {}}, format="json"), 400, "validation_failed", ["/input"])
    ok = author.post(f"{base}/1.0.0/plan", {"inputs": {"count": 3}}, format="json")
    assert ok.status_code == 200 and ok.json()["inputs"] == {"count": 3, "region": "eu", "dry": False}


PUBLISH_PROBLEMS = [
    ({"id": "a", "uses": "pkg:mc/nope@1"}, "/tasks/0/uses"),
    ({"id": "a", "uses": "pkg:mc/echo@7"}, "/tasks/0/uses"),
    ({"id": "a", "uses": "pkg:mc/sleep@1", "with": {"seconds": "long"}}, "/tasks/0/with/seconds"),
    ({"id": "a", "uses": "pkg:mc/sleep@1", "with": {}}, "/tasks/0/with"),
    ({"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "${{ inputs.nope }}"}}, "/tasks/0/with/message"),
    ({"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "${{ steps.b.outputs.x }}"}}, "/tasks/0/with/message"),
    ({"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "${{ eval('1') }}"}}, "/tasks/0/with/message"),
    (
        {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": 1}, "compensate": {"uses": "pkg:x/y@1"}},
        "/tasks/0/compensate/uses",
    ),
]


@pytest.mark.parametrize(("task", "path"), PUBLISH_PROBLEMS)
def test_packages_and_expressions_are_checked_when_saving(author: APIClient, task: dict[str, Any], path: str) -> None:
    doc = {"name": "checked", "version": "1.0.0", "tasks": [task]}
    response = author.post("/api/workflows", {"manifest": doc}, format="json")
    assert response.status_code == 400, response.content
    assert path in [detail["path"] for detail in response.json()["error"]["details"]]
