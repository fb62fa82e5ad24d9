"""``POST /api/manifests/plan``: the plan of an unpublished manifest, with policy, storing nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from executions.models import Execution, StepRun
from mc_project.tenancy.models import Tenant
from policy.models import PolicyDecision, TenantPolicy
from receipts.models import Receipt
from tests.asserts import assert_error
from tests.factories import manifest
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db

URL = "/api/manifests/plan"
JSON = "application/json"
ROLES = ["viewer", "author", "publisher", "operator", "admin"]
INPUTS = {
    "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
    "count": {"type": "integer", "required": True},
}


def rows() -> dict[str, int]:
    """How many rows every table a plan could write to holds."""
    models = (PolicyDecision, Execution, StepRun, Workflow, WorkflowVersion, Receipt)
    return {model.__name__: model.objects.count() for model in models}


def plan(client: APIClient, body: Any) -> Any:
    return client.generic("POST", URL, json.dumps(body), content_type=JSON)


def decisions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {decision["pack"]: decision for decision in body["policy_decisions"]}


def test_plan_of_an_unpublished_manifest_with_policy_and_nothing_stored(viewer: APIClient) -> None:
    before = rows()
    response = plan(viewer, {"manifest": manifest(inputs=INPUTS), "inputs": {"count": 2}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["workflow_name"] == "hello-world" and body["version"] == "1.0.0"
    assert body["inputs"] == {"count": 2, "region": "eu"}  # defaults filled in
    assert body["stages"] == [["fetch"], ["left", "right"], ["report"]]
    assert body["critical_path"][0] == "fetch" and body["critical_path"][-1] == "report"
    assert body["estimated_seconds"] > 0
    assert [step["id"] for step in body["steps"]] == ["fetch", "left", "right", "report"]
    assert body["estimated_usd"] == pytest.approx(sum(step["estimated_usd"] for step in body["steps"]))
    assert body["quota"]["small"]["steps"] == 4
    packs = decisions(body)
    assert sorted(packs) == ["budget", "pii", "quotas", "residency"]
    for decision in packs.values():
        assert decision["id"] is None  # not stored
        assert decision["revision"] and decision["bundle_digest"].startswith("sha256:")
        assert decision["mode"] == "enforce" and not decision["blocks"]
    assert [warning["code"] for warning in packs["residency"]["warn"]] == ["region_unset"]
    assert rows() == before


def test_a_yaml_manifest_as_text_or_as_the_body(author: APIClient) -> None:
    text = yaml.safe_dump(manifest(name="from-yaml"))
    response = plan(author, {"manifest": text})
    assert response.status_code == 200, response.content
    assert response.json()["workflow_name"] == "from-yaml"
    response = author.generic("POST", URL, text, content_type="application/yaml")
    assert response.status_code == 200, response.content
    assert response.json()["stages"] == [["fetch"], ["left", "right"], ["report"]]


def test_a_deny_is_a_plan_with_its_explanation_not_an_error(viewer: APIClient, tenant: Tenant) -> None:
    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode="enforce", limits={"max_cost_per_run_usd": 1e-7})
    before = rows()
    response = plan(viewer, {"manifest": manifest()})
    assert response.status_code == 200, response.content
    budget = decisions(response.json())["budget"]
    assert budget["result"] == "deny" and budget["mode"] == "enforce" and budget["blocks"] is True
    assert [item["code"] for item in budget["deny"]] == ["run_cost_exceeded"]
    assert budget["deny"][0]["path"] == "/plan/estimated_usd"
    assert "$" in budget["deny"][0]["message"]
    assert rows() == before


def test_an_advisory_deny_does_not_block(viewer: APIClient, tenant: Tenant) -> None:
    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode="advisory", limits={"max_cost_per_run_usd": 1e-7})
    budget = decisions(plan(viewer, {"manifest": manifest()}).json())["budget"]
    assert budget["result"] == "deny" and budget["mode"] == "advisory" and budget["blocks"] is False


def test_the_region_asked_for_is_what_policy_sees(viewer: APIClient) -> None:
    response = plan(viewer, {"manifest": manifest(region="eu"), "region": "us"})
    assert response.status_code == 200, response.content
    residency = decisions(response.json())["residency"]
    assert residency["result"] == "deny"
    assert [item["code"] for item in residency["deny"]] == ["region_mismatch"]
    same = decisions(plan(viewer, {"manifest": manifest(region="eu"), "region": "eu"}).json())["residency"]
    assert same["result"] == "allow", same


def test_another_tenants_policy_does_not_apply(outsider: APIClient, tenant: Tenant) -> None:
    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode="enforce", limits={"max_cost_per_run_usd": 1e-7})
    budget = decisions(plan(outsider, {"manifest": manifest()}).json())["budget"]
    assert budget["result"] == "allow", budget


def _bad_needs() -> dict[str, Any]:
    doc = manifest()
    doc["tasks"][1]["needs"] = ["nope"]
    doc["tasks"][2]["retry"] = 3
    return doc


BAD_BODIES = [
    pytest.param({"manifest": _bad_needs()}, 400, "manifest_invalid", ["/tasks/1/needs/0", "/tasks/2/retry"], id="dag"),
    pytest.param(
        {"manifest": manifest(tasks=[{"id": "a", "uses": "pkg:mc/nope@1"}])},
        400,
        "manifest_invalid",
        ["/tasks/0/uses"],
        id="unknown-package",
    ),
    pytest.param({"manifest": "name: [unclosed\n"}, 400, "manifest_syntax", None, id="yaml-syntax"),
    pytest.param({"manifest": 42}, 400, "manifest_invalid", None, id="manifest-not-an-object"),
    pytest.param({"manifest": None}, 400, "validation_failed", ["/manifest"], id="manifest-null"),
    pytest.param({}, 400, "validation_failed", ["/manifest"], id="manifest-missing"),
    pytest.param(
        {"manifest": manifest(inputs=INPUTS), "inputs": {"count": "3"}},
        400,
        "invalid_inputs",
        ["/inputs/count"],
        id="input-type",
    ),
    pytest.param({"manifest": manifest(inputs=INPUTS)}, 400, "invalid_inputs", ["/inputs/count"], id="input-required"),
    pytest.param(
        {"manifest": manifest(inputs=INPUTS), "inputs": {"count": 1, "regoin": "eu"}},
        400,
        "invalid_inputs",
        ["/inputs/regoin"],
        id="input-unknown",
    ),
    pytest.param({"manifest": manifest(), "inputs": [1]}, 400, "validation_failed", ["/inputs"], id="inputs-list"),
    pytest.param({"manifest": manifest(), "region": "?"}, 400, "validation_failed", ["/region"], id="region"),
    pytest.param({"manifest": manifest(), "region": 7}, 400, "validation_failed", ["/region"], id="region-type"),
    pytest.param({"manifest": manifest(), "colour": "red"}, 400, "validation_failed", ["/colour"], id="unknown-key"),
    pytest.param([manifest()], 400, "validation_failed", None, id="body-a-list"),
]


@pytest.mark.parametrize(("body", "status", "code", "paths"), BAD_BODIES)
def test_bad_requests_get_the_error_shape_and_write_nothing(
    author: APIClient, body: Any, status: int, code: str, paths: list[str] | None
) -> None:
    before = rows()
    assert_error(plan(author, body), status, code, paths)
    assert rows() == before


def test_an_invalid_manifest_names_every_problem_by_pointer(author: APIClient) -> None:
    error = assert_error(plan(author, {"manifest": _bad_needs()}), 400, "manifest_invalid")
    messages = {detail["path"]: detail["message"] for detail in error["details"]}
    assert "nope" in messages["/tasks/1/needs/0"]
    assert "retries" in messages["/tasks/2/retry"]  # did you mean


def test_malformed_json_is_a_parse_error(author: APIClient) -> None:
    assert_error(author.generic("POST", URL, '{"manifest": ', content_type=JSON), 400, "parse_error")


def test_a_manifest_over_one_mib_is_413(author: APIClient, settings: Any) -> None:
    doc = manifest()
    doc["tasks"][0]["with"] = {"message": "x" * (1024 * 1024 + 1)}
    body = json.dumps({"manifest": doc})
    assert len(body) < settings.MC_MAX_REQUEST_BYTES  # the manifest limit must catch it, not the body limit
    before = rows()
    assert_error(author.generic("POST", URL, body, content_type=JSON), 413, "manifest_too_large")
    text = json.dumps({"manifest": yaml.safe_dump(doc, width=2**31)})
    assert_error(author.generic("POST", URL, text, content_type=JSON), 413, "manifest_too_large")
    assert rows() == before


def test_a_body_over_the_request_limit_is_413(author: APIClient, settings: Any) -> None:
    settings.MC_MAX_REQUEST_BYTES = 1000
    body = json.dumps({"manifest": manifest(description="d" * 1000)})
    assert_error(author.generic("POST", URL, body, content_type=JSON), 413, "payload_too_large")


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_plan(make_client: Callable[..., APIClient], tenant: Tenant, role: str) -> None:
    response = plan(make_client(role, tenant), {"manifest": manifest()})
    assert response.status_code == 200, response.content


def test_unauthenticated_is_401(db: Any) -> None:
    assert_error(plan(APIClient(), {"manifest": manifest()}), 401, "not_authenticated")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token mc_not-a-real-token")
    assert_error(plan(client, {"manifest": manifest()}), 401, "authentication_failed")


def test_get_is_405(viewer: APIClient) -> None:
    assert_error(viewer.get(URL), 405, "method_not_allowed")
