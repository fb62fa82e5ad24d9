"""Routing of executions that pin no version: shares, determinism, pinned runs, blue/green and back."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from canary.choices import Arm
from canary.routing import arm_choose, route_for, routing_bucket
from canary.services import canary_pause, canary_promote, canary_rollback
from canary.tests.factories import publish_next, published_versions, release
from executions.models import Execution
from mc_project.tenancy.choices import Role

DECISIONS = 2000


def _within(count: int, n: int, p: float, sigmas: float = 6.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("weight", [0, 10, 50, 90, 100])
def test_shares_by_idempotency_key_are_within_statistical_bounds(weight: int) -> None:
    arms = Counter(
        arm_choose(
            state="running",
            strategy="canary",
            weight=weight,
            bucket=routing_bucket(tenant_id="t", workflow_id="w", idempotency_key=f"order-{i}"),
        )
        for i in range(DECISIONS)
    )
    assert _within(arms[Arm.CANARY], DECISIONS, weight / 100), arms
    if weight in (0, 100):
        assert arms[Arm.CANARY] == DECISIONS * weight // 100  # exact at the ends


def test_shares_without_a_key_are_within_statistical_bounds() -> None:
    buckets = [routing_bucket(tenant_id="t", workflow_id="w", idempotency_key=None) for _ in range(DECISIONS)]
    arms = Counter(arm_choose(state="running", strategy="canary", weight=10, bucket=b) for b in buckets)
    assert _within(arms[Arm.CANARY], DECISIONS, 0.10), arms
    assert min(buckets) >= 0 and max(buckets) <= 99


def test_a_key_always_lands_in_the_same_bucket_per_tenant_and_workflow() -> None:
    first = routing_bucket(tenant_id="t1", workflow_id="w1", idempotency_key="deploy-42")
    again = {routing_bucket(tenant_id="t1", workflow_id="w1", idempotency_key="deploy-42") for _ in range(50)}
    assert again == {first}
    others = {routing_bucket(tenant_id=f"t{i}", workflow_id="w1", idempotency_key="deploy-42") for i in range(50)}
    assert len(others) > 10  # the tenant and workflow are part of the hash


def test_states_and_strategies() -> None:
    assert arm_choose(state="paused", strategy="canary", weight=100, bucket=0) == Arm.STABLE
    assert arm_choose(state="rolled_back", strategy="blue_green", weight=0, bucket=0) == Arm.STABLE
    assert arm_choose(state="running", strategy="blue_green", weight=100, bucket=99) == Arm.CANARY
    assert arm_choose(state="running", strategy="canary", weight=10, bucket=9) == Arm.CANARY
    assert arm_choose(state="running", strategy="canary", weight=10, bucket=10) == Arm.STABLE


@pytest.fixture
def author(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


def run(client: APIClient, version: str | None = None, key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"workflow": "checkout", "mode": "dry_run"}
    if version is not None:
        body["version"] = version
    if key is not None:
        body["idempotency_key"] = key
    response = client.post("/api/executions", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.django_db
def test_unpinned_executions_record_their_arm_and_run_its_version(author: APIClient, tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary, weight=50)
    bodies = [run(author, key=f"k-{i}") for i in range(40)]
    expected = {Arm.STABLE: stable.version, Arm.CANARY: canary.version}
    assert {body["arm"] for body in bodies} == {"stable", "canary"}
    for body in bodies:
        assert body["canary_release"] == made.pk and body["version"] == expected[body["arm"]]
        key = body["idempotency_key"]
        bucket = routing_bucket(tenant_id=tenant.pk, workflow_id=stable.workflow_id, idempotency_key=key)
        assert (bucket < 50) == (body["arm"] == "canary")  # decided by the key


@pytest.mark.django_db
def test_pinned_executions_are_never_rerouted(author: APIClient, tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary, strategy="blue_green")
    pinned = run(author, version=stable.version)
    assert (pinned["version"], pinned["arm"], pinned["canary_release"]) == (stable.version, "", None)
    canary_pause(release=made, actor=None)
    pinned = run(author, version=canary.version)
    assert (pinned["version"], pinned["arm"], pinned["canary_release"]) == (canary.version, "", None)


@pytest.mark.django_db
def test_blue_green_switches_all_traffic_and_rollback_switches_it_back(author: APIClient, tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary, strategy="blue_green")
    assert {(b["version"], b["arm"]) for b in (run(author) for _ in range(10))} == {(canary.version, "canary")}
    canary_rollback(release=made, actor=None, reason="breach")
    assert {(b["version"], b["arm"]) for b in (run(author) for _ in range(10))} == {(stable.version, "stable")}
    # A newer version published after the rollback ends the hold: the latest runs again.
    newer = publish_next(stable.workflow)
    after = run(author)
    assert (after["version"], after["arm"], after["canary_release"]) == (newer.version, "", None)


@pytest.mark.django_db
def test_paused_routes_to_stable_and_promoted_to_the_latest(author: APIClient, tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary, weight=100)
    assert run(author)["version"] == canary.version
    canary_pause(release=made, actor=None)
    assert {(b["version"], b["arm"]) for b in (run(author) for _ in range(5))} == {(stable.version, "stable")}
    canary_promote(release=made, actor=None)
    promoted = run(author)
    assert (promoted["version"], promoted["arm"], promoted["canary_release"]) == (canary.version, "", None)
    assert Execution.objects.filter(canary_release=made).count() == 6


@pytest.mark.django_db
def test_routing_is_one_query_while_a_release_runs(tenant: Any, django_assert_num_queries: Any) -> None:
    stable, canary = published_versions(tenant)
    release(stable, canary)
    route_for(tenant_id=tenant.pk, workflow_id=stable.workflow_id, idempotency_key="x")  # reads the version once
    with django_assert_num_queries(1):
        route = route_for(tenant_id=tenant.pk, workflow_id=stable.workflow_id, idempotency_key="x")
    assert route is not None and route.version.pk in (stable.pk, canary.pk)
