"""Policy where decisions are made: publish, plan, dry run and execute; enforce vs advisory;
fail closed on a broken bundle; every decision stored with its revision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from executions.models import Execution
from mc_project.tenancy.choices import Role
from mc_project.tests.test_metrics import decisions, scrape
from policy.models import PolicyBundle, PolicyDecision, TenantPolicy
from tests.factories import UserFactory, manifest
from workflows.choices import VersionState
from workflows.models import WorkflowVersion
from workflows.services import workflow_create, workflow_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.ADMIN, tenant)


@pytest.fixture
def version(tenant: Any) -> WorkflowVersion:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest(region="eu-west-1"))
    return workflow_publish(workflow=workflow, actor=user).version


def cap_budget(tenant: Any, mode: str = "enforce") -> None:
    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode=mode, limits={"max_cost_per_run_usd": 0.0000001})


def test_an_enforced_deny_refuses_the_run_with_every_explanation_and_stores_the_decision(
    admin: APIClient, tenant: Any, version: WorkflowVersion
) -> None:
    cap_budget(tenant)
    counted = scrape(Client()).get(decisions("budget", stage="execute", result="deny", mode="enforce"), 0)
    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    assert response.status_code == 403, response.content
    assert scrape(Client())[decisions("budget", stage="execute", result="deny", mode="enforce")] == counted + 1
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert any(
        d["path"] == "/plan/estimated_usd" and "budget: run_cost_exceeded" in d["message"] for d in error["details"]
    )
    assert Execution.objects.count() == 0
    denied = PolicyDecision.objects.get(tenant=tenant, stage="execute", pack="budget")
    assert denied.result == "deny" and denied.mode == "enforce" and denied.execution is None
    assert denied.workflow_version_id == version.pk and denied.revision and denied.input_digest.startswith("sha256:")


def test_advisory_mode_explains_but_does_not_block(admin: APIClient, tenant: Any, version: WorkflowVersion) -> None:
    cap_budget(tenant, mode="advisory")
    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    assert response.status_code == 201, response.content
    budget = next(d for d in response.json()["plan"]["policy_decisions"] if d["pack"] == "budget")
    assert budget["result"] == "deny" and budget["mode"] == "advisory" and budget["blocks"] is False
    assert PolicyDecision.objects.get(stage="execute", pack="budget").execution_id is not None


def test_a_dry_run_shows_the_denial_without_being_refused(
    admin: APIClient, tenant: Any, version: WorkflowVersion
) -> None:
    cap_budget(tenant)
    response = admin.post("/api/executions", {"workflow": "hello-world", "mode": "dry_run"}, format="json")
    assert response.status_code == 201
    budget = next(d for d in response.json()["plan"]["policy_decisions"] if d["pack"] == "budget")
    assert budget["blocks"] is True and budget["deny"][0]["code"] == "run_cost_exceeded"
    plan = admin.post(f"/api/workflows/{version.workflow_id}/versions/{version.version}/plan", {}, format="json")
    assert any(d["blocks"] for d in plan.json()["policy_decisions"])


def test_publish_is_refused_by_the_static_packs_and_the_draft_stays(admin: APIClient, tenant: Any) -> None:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest(name="to-moscow", region="ru-central-1"))
    response = admin.post(f"/api/workflows/{workflow.pk}/publish", {}, format="json")
    assert response.status_code == 403
    assert any("residency: region_banned" in d["message"] for d in response.json()["error"]["details"])
    assert workflow.versions.get().state == VersionState.DRAFT
    assert PolicyDecision.objects.filter(stage="publish", pack="residency", result="deny").count() == 1
    assert not PolicyDecision.objects.filter(stage="publish", pack="budget").exists()  # static packs only


def test_a_broken_active_bundle_fails_closed(admin: APIClient, tenant: Any, version: WorkflowVersion) -> None:
    PolicyBundle.objects.create(
        pack="budget",
        revision="broken-1",
        digest="sha256:" + "0" * 64,
        files={
            ".manifest": '{"revision": "broken-1", "roots": ["mc/budget"]}',
            "policy.rego": "package mc.budget\ndeny contains x if {",
        },
        active=True,
    )
    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    assert response.status_code == 403
    assert any("budget: policy_error" in d["message"] for d in response.json()["error"]["details"])
    assert Execution.objects.count() == 0


def test_decisions_belong_to_their_tenant(
    admin: APIClient, tenant: Any, other_tenant: Any, version: WorkflowVersion
) -> None:
    admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    assert PolicyDecision.objects.filter(tenant=tenant).count() >= 4
    assert not PolicyDecision.objects.filter(tenant=other_tenant).exists()


def test_decisions_api_lists_the_tenants_decisions_with_filters(
    admin: APIClient, tenant: Any, version: WorkflowVersion, outsider: APIClient
) -> None:
    cap_budget(tenant)
    admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    listing = admin.get("/api/policy/decisions?pack=budget&result=deny").json()
    assert listing["count"] == 1
    decision = listing["results"][0]
    assert decision["stage"] == "execute" and decision["deny"][0]["code"] == "run_cost_exceeded"
    assert decision["workflow"] == "hello-world" and decision["version"] == "1.0.0"
    assert admin.get(f"/api/policy/decisions/{decision['id']}").status_code == 200
    assert outsider.get(f"/api/policy/decisions/{decision['id']}").status_code == 404
    assert outsider.get("/api/policy/decisions").json()["count"] == 0
    assert admin.get("/api/policy/decisions?result=maybe").status_code == 400


def test_only_platform_staff_upload_bundles_and_a_broken_one_is_a_400(
    make_client: Callable[..., APIClient], tenant: Any
) -> None:
    from policy.services import BUNDLES_DIR

    files = {p.name: p.read_text() for p in (BUNDLES_DIR / "budget").iterdir() if p.is_file()}
    operator = make_client(Role.ADMIN, tenant)
    assert operator.post("/api/policy/bundles", {"pack": "budget", "files": files}, format="json").status_code == 403
    operator.user.is_staff = True
    operator.user.save()
    created = operator.post("/api/policy/bundles", {"pack": "budget", "files": files}, format="json")
    assert created.status_code == 201 and created.json()["active"] is True
    broken = {**files, "policy.rego": "package mc.budget\n\ndeny contains x if {\n"}
    response = operator.post("/api/policy/bundles", {"pack": "budget", "files": broken}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bundle_invalid"
    assert response.json()["error"]["details"][0]["message"].startswith("policy.rego:")
    assert PolicyBundle.objects.get(pack="budget", active=True).digest == created.json()["digest"]
    again = operator.post("/api/policy/bundles", {"pack": "budget", "files": files}, format="json")
    assert again.status_code == 200 and PolicyBundle.objects.filter(pack="budget").count() == 1
