"""The canary gauges of /metrics: read from the database at each scrape, recent releases only,
and /metrics still answers when the database does not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from canary import metrics as canary_metrics
from canary import services
from canary.models import CanaryRelease
from canary.tests.factories import published_versions, release

pytestmark = pytest.mark.django_db


def scrape() -> str:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, name: str, **labels: Any) -> float | None:
    wanted = {key: str(label) for key, label in labels.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return None


def test_a_running_release_shows_its_state_weight_and_budget(tenant: Any) -> None:
    made = release(*published_versions(tenant), weight=25)
    labels = {"tenant": "acme", "workflow": "checkout", "release": made.pk}

    text = scrape()

    assert value(text, "mc_canary_state", **labels, state="running") == 1.0
    assert value(text, "mc_canary_state", **labels, state="paused") == 0.0
    assert value(text, "mc_canary_weight", **labels) == 25.0
    assert value(text, "mc_canary_error_budget_remaining", **labels) == 1.0  # not analysed yet: nothing spent
    assert "mc_canary_error_ratio{" not in text  # no figures before an analysis


def test_ended_releases_drop_out_after_an_hour(tenant: Any) -> None:
    made = release(*published_versions(tenant))
    services.canary_rollback(release=made, actor=None, reason="bad")
    labels = {"tenant": "acme", "workflow": "checkout", "release": made.pk}
    assert value(scrape(), "mc_canary_state", **labels, state="rolled_back") == 1.0

    CanaryRelease.objects.filter(pk=made.pk).update(ended_at=timezone.now() - timedelta(hours=2))

    assert f'release="{made.pk}"' not in scrape()


def test_metrics_answer_without_the_database(tenant: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release(*published_versions(tenant))

    def down() -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(canary_metrics, "_visible_releases", down)
    text = scrape()

    assert "# TYPE mc_canary_weight gauge" in text and "mc_canary_weight{" not in text
    assert "mc_executions_total" in text  # the process series are still there
