"""The deployment's canary and budget defaults (MC_CANARY_*, MC_BUDGET_MAX_COST_PER_RUN_USD): what
the chart's values.canary.yaml sets, and what a release or a run gets when it says nothing."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from canary import choices
from canary.tests.factories import published_versions
from mc_project.env import read_environment
from policy.models import TenantPolicy
from policy.services import policy_caches_clear, tenant_policies
from tests.asserts import assert_error

DEPLOYMENT = {"weight": 25, "max_error_rate_pct": 2.0, "max_p95_ms": 1200, "error_budget_minutes": 15}


@pytest.mark.django_db
def test_a_release_gets_the_deployment_defaults(publisher: APIClient, tenant: Any, settings: Any) -> None:
    settings.MC_CANARY_DEFAULTS = DEPLOYMENT
    published_versions(tenant, count=2)
    response = publisher.post("/api/canaries", {"workflow": "checkout"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {name: body[name] for name in DEPLOYMENT} == DEPLOYMENT


@pytest.mark.django_db
def test_figures_given_win_over_the_defaults(publisher: APIClient, tenant: Any, settings: Any) -> None:
    settings.MC_CANARY_DEFAULTS = DEPLOYMENT
    published_versions(tenant, count=2)
    response = publisher.post("/api/canaries", {"workflow": "checkout", "weight": 5, "max_p95_ms": 300}, format="json")
    body = response.json()
    assert (body["weight"], body["max_p95_ms"], body["error_budget_minutes"]) == (5, 300, 15)


@pytest.mark.django_db
def test_no_release_starts_when_canaries_are_off(publisher: APIClient, tenant: Any, settings: Any) -> None:
    settings.MC_CANARY_ENABLED = False
    published_versions(tenant, count=2)
    response = publisher.post("/api/canaries", {"workflow": "checkout"}, format="json")
    assert_error(response, 409, "canary_disabled")


def test_the_environment_defaults_are_the_sprint_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MC_CANARY_WEIGHT", "MC_CANARY_MAX_ERROR_RATE_PCT", "MC_CANARY_MAX_P95_MS", "MC_CANARY_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    env = read_environment()
    assert env.canary_enabled is True
    assert env.canary_weight == choices.DEFAULT_WEIGHT[choices.CanaryStrategy.CANARY]
    assert env.canary_max_error_rate_pct == choices.DEFAULT_MAX_ERROR_RATE_PCT
    assert env.canary_max_p95_ms == choices.DEFAULT_MAX_P95_MS
    assert env.canary_error_budget_minutes == choices.DEFAULT_ERROR_BUDGET_MINUTES
    assert env.canary_problems() == []


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MC_CANARY_WEIGHT", "150", "MC_CANARY_WEIGHT must be a percent"),
        ("MC_CANARY_MAX_P95_MS", "0", "MC_CANARY_MAX_P95_MS must be at least 1"),
        ("MC_BUDGET_MAX_COST_PER_RUN_USD", "-1", "MC_BUDGET_MAX_COST_PER_RUN_USD must be"),
    ],
)
def test_a_default_out_of_range_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    assert any(item.startswith(problem) for item in read_environment().canary_problems())


@pytest.mark.django_db
def test_the_budget_cap_is_the_deployments_unless_the_tenant_sets_one(tenant: Any, settings: Any) -> None:
    settings.MC_BUDGET_MAX_COST_PER_RUN_USD = 0.75
    policy_caches_clear()
    assert tenant_policies(tenant)[1]["max_cost_per_run_usd"] == 0.75
    TenantPolicy.objects.create(tenant=tenant, pack="budget", limits={"max_cost_per_run_usd": 3.0})
    policy_caches_clear()
    assert tenant_policies(tenant)[1]["max_cost_per_run_usd"] == 3.0
    settings.MC_BUDGET_MAX_COST_PER_RUN_USD = None
    policy_caches_clear()
    TenantPolicy.objects.filter(tenant=tenant).delete()
    assert "max_cost_per_run_usd" not in tenant_policies(tenant)[1]
