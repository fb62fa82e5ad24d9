"""The release's constraints and its transition table."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from canary.choices import CANARY_TRANSITIONS, CanaryState
from canary.models import CanaryRelease
from canary.services import canary_pause, canary_promote, canary_resume, canary_rollback
from canary.tests.factories import published_versions, release
from canary.transitions import canary_transition
from mc_project.errors import Conflict, ValidationFailed
from workflows.services import draft_save

pytestmark = pytest.mark.django_db


def test_defaults_follow_the_sprint_plan(tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary)
    assert (made.strategy, made.weight, made.state) == ("canary", 10, "running")
    assert (made.max_error_rate_pct, made.max_p95_ms, made.error_budget_minutes) == (1.0, 900, 30)
    assert made.min_sample >= 1 and made.analysis_window_s >= 1
    blue, green = published_versions(tenant, name="billing")
    assert release(blue, green, strategy="blue_green").weight == 100  # all traffic switches at once


def test_one_running_or_paused_release_per_workflow(tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    first = release(stable, canary)
    with pytest.raises(Conflict) as raised:
        release(stable, canary)
    assert raised.value.code == "canary_active"
    canary_pause(release=first, actor=None)
    with pytest.raises(Conflict):
        release(stable, canary)
    with pytest.raises(IntegrityError), transaction.atomic():  # the database holds the line too
        CanaryRelease.objects.create(workflow=stable.workflow, stable_version=stable, canary_version=canary)
    canary_rollback(release=first, actor=None)
    assert release(stable, canary).state == CanaryState.RUNNING  # an ended release no longer counts


@pytest.mark.parametrize(
    "fields",
    [{"weight": 101}, {"state": CanaryState.ROLLED_BACK, "weight": 5}, {"max_error_rate_pct": -1}, {"min_sample": 0}],
)
def test_database_checks(tenant: Any, fields: dict[str, Any]) -> None:
    stable, canary = published_versions(tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        CanaryRelease.objects.create(workflow=stable.workflow, stable_version=stable, canary_version=canary, **fields)


def test_versions_must_be_published_differ_and_belong_to_the_workflow(tenant: Any, other_tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    (foreign,) = published_versions(other_tenant, count=1)
    draft = draft_save(workflow=stable.workflow, actor=None, manifest=stable.manifest)
    for bad, path in ((foreign, "/canary_version"), (draft, "/canary_version"), (stable, "/canary_version")):
        with pytest.raises(ValidationFailed) as raised:
            release(stable, bad)
        assert raised.value.details[0]["path"] == path
    with pytest.raises(ValidationFailed) as raised:
        release(stable, canary, strategy="blue_green", weight=50)
    assert raised.value.details[0]["path"] == "/weight"
    with pytest.raises(ValidationError) as invalid:
        CanaryRelease(workflow=stable.workflow, stable_version=stable, canary_version=draft).full_clean()
    assert "canary_version" in invalid.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        CanaryRelease.objects.create(workflow=stable.workflow, stable_version=stable, canary_version=stable)


def test_transitions(tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary)
    made = canary_pause(release=made, actor=None, reason="looking")
    assert made.state == "paused" and made.paused_at is not None and made.reason == "looking"
    made = canary_resume(release=made, actor=None)
    assert made.state == "running" and made.paused_at is None
    made = canary_promote(release=made, actor=None)
    assert made.state == "promoted" and made.weight == 100 and made.ended_at is not None
    for action in (canary_pause, canary_resume, canary_promote, canary_rollback):
        with pytest.raises(Conflict) as raised:
            action(release=made, actor=None)
        assert raised.value.code == "canary_transition_illegal"
    made.refresh_from_db()
    assert made.state == "promoted"


def test_the_transition_table_ends_in_promoted_or_rolled_back(tenant: Any) -> None:
    assert not CANARY_TRANSITIONS[CanaryState.PROMOTED] and not CANARY_TRANSITIONS[CanaryState.ROLLED_BACK]
    stable, canary = published_versions(tenant)
    made = release(stable, canary)
    with pytest.raises(Conflict):
        canary_transition(made, CanaryState.RUNNING)  # running -> running is no transition
    rolled = canary_rollback(release=made, actor=None, reason="breach")
    assert rolled.state == "rolled_back" and rolled.weight == 0 and rolled.ended_at is not None
