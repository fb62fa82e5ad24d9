"""MC_OPA_URL: runs decided by an OPA server (the stand-in) instead of in-process, failing closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.models import Execution
from mc_project.env import EnvError, read_environment
from mc_project.tenancy.choices import Role
from policy import services
from policy.choices import PACKS
from policy.engine import Bundle, load_bundle
from policy.models import PolicyDecision, TenantPolicy
from policy.services import BUNDLES_DIR
from policy.tests.opa_standin import OpaStandIn
from tests.factories import UserFactory, manifest
from workflows.models import WorkflowVersion
from workflows.services import workflow_create, workflow_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.ADMIN, tenant)


@pytest.fixture
def version(tenant: Any) -> WorkflowVersion:
    """Published with the in-process engine, before any test points MC at an OPA server."""
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest(region="eu-west-1"))
    return workflow_publish(workflow=workflow, actor=user).version


@pytest.fixture
def bundles() -> dict[str, Bundle]:
    """The bundles MC evaluates when no revision is synced: the ones on disk."""
    return {pack: load_bundle(BUNDLES_DIR / pack, name=pack) for pack in PACKS}


@pytest.fixture
def opa(settings: Any, bundles: dict[str, Bundle], version: WorkflowVersion) -> Iterator[OpaStandIn]:
    """An OPA server holding the same bundles, with MC_OPA_URL pointing at it."""
    with OpaStandIn(list(bundles.values())) as standin:
        settings.MC_OPA_URL = standin.base_url
        yield standin
    forget_engines(standin.base_url)


def forget_engines(url: str) -> None:
    """Close and drop the engines cached for ``url``: a later stand-in may get the same port."""
    with services._engines_lock:
        engines = [services._engines.pop(key) for key in list(services._engines) if key[0][0] == url]
    for engine in engines:
        engine.close()


def test_a_run_is_decided_by_the_opa_server_and_its_decisions_name_mcs_bundles(
    admin: APIClient, tenant: Any, opa: OpaStandIn, bundles: dict[str, Bundle]
) -> None:
    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")

    assert response.status_code == 201, response.content
    assert sorted(request["path"] for request in opa.requests) == sorted(f"mc/{pack}" for pack in PACKS)
    assert all(request["params"] == {"strict-builtin-errors": ["true"]} for request in opa.requests)
    decisions = PolicyDecision.objects.filter(tenant=tenant, stage="execute", execution_id=response.json()["id"])
    assert {d.pack: (d.revision, d.bundle_digest) for d in decisions} == {
        pack: (bundle.revision, bundle.digest) for pack, bundle in bundles.items()
    }
    assert all(d.result in ("allow", "warn") and d.input_digest.startswith("sha256:") for d in decisions)


def test_a_deny_of_the_opa_server_refuses_the_run(admin: APIClient, tenant: Any, opa: OpaStandIn) -> None:
    TenantPolicy.objects.create(tenant=tenant, pack="budget", limits={"max_cost_per_run_usd": 0.0000001})

    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")

    assert response.status_code == 403, response.content
    assert any("budget: run_cost_exceeded" in d["message"] for d in response.json()["error"]["details"])
    assert "mc/budget" in {request["path"] for request in opa.requests}
    assert PolicyDecision.objects.get(tenant=tenant, stage="execute", pack="budget").result == "deny"


def test_an_opa_server_that_answers_nothing_useful_fails_closed(admin: APIClient, tenant: Any, opa: OpaStandIn) -> None:
    opa.mode = "undefined"  # {} for every query: no deny and no warn document

    response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")

    assert response.status_code == 403, response.content
    assert {d.pack for d in PolicyDecision.objects.filter(stage="execute", result="deny")} == set(PACKS)


def test_an_unreachable_opa_server_fails_closed(
    admin: APIClient, tenant: Any, version: WorkflowVersion, settings: Any, bundles: dict[str, Bundle]
) -> None:
    standin = OpaStandIn(list(bundles.values()))  # bound to a port, never started
    standin.stop()
    settings.MC_OPA_URL, settings.MC_POLICY_TIMEOUT = standin.base_url, 0.5

    try:
        response = admin.post("/api/executions", {"workflow": "hello-world"}, format="json")
    finally:
        forget_engines(standin.base_url)

    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert {detail["message"].split(":")[1].strip() for detail in error["details"]} == {"policy_error"}
    assert {d.pack for d in PolicyDecision.objects.filter(stage="execute", result="deny")} == set(PACKS)
    assert Execution.objects.count() == 0


def test_blanking_mc_opa_url_goes_back_to_the_in_process_engine(
    admin: APIClient, settings: Any, opa: OpaStandIn
) -> None:
    assert admin.post("/api/executions", {"workflow": "hello-world"}, format="json").status_code == 201
    asked = len(opa.requests)
    settings.MC_OPA_URL = ""

    assert admin.post("/api/executions", {"workflow": "hello-world"}, format="json").status_code == 201
    assert len(opa.requests) == asked == len(PACKS)


def test_mc_opa_url_is_blank_for_in_process_and_the_timeout_defaults_to_2s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MC_OPA_URL", raising=False)
    monkeypatch.setenv("MC_POLICY_TIMEOUT", " ")
    assert (read_environment().opa_url, read_environment().policy_timeout) == ("", 2.0)
    monkeypatch.setenv("MC_OPA_URL", "http://opa:8181/")
    monkeypatch.setenv("MC_POLICY_TIMEOUT", "0.5")
    assert (read_environment().opa_url, read_environment().policy_timeout) == ("http://opa:8181", 0.5)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("MC_OPA_URL", "opa:8181", "MC_OPA_URL must be an http:// or https:// URL"),
        ("MC_OPA_URL", "ftp://opa", "MC_OPA_URL must be an http:// or https:// URL"),
        ("MC_OPA_URL", "http://opa:99999", "MC_OPA_URL must be an http:// or https:// URL"),
        ("MC_POLICY_TIMEOUT", "0", "MC_POLICY_TIMEOUT must be a number of seconds above 0"),
        ("MC_POLICY_TIMEOUT", "-1", "MC_POLICY_TIMEOUT must be a number of seconds above 0"),
        ("MC_POLICY_TIMEOUT", "inf", "MC_POLICY_TIMEOUT must be a number of seconds above 0"),
        ("MC_POLICY_TIMEOUT", "soon", "MC_POLICY_TIMEOUT must be a number"),
    ],
)
def test_an_unusable_opa_url_or_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(EnvError, match=complaint):
        read_environment()
