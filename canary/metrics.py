"""Canary gauges for ``/metrics``, read from the database at scrape time.

A release's state, weight and figures belong to no process, so they are not counted in
the multiprocess files: each scrape reads the releases that are running or paused, and
those that ended within the last hour (so a rollback stays visible on dashboards).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from canary.choices import ACTIVE_STATES, ENDED_VISIBLE_S, Arm, CanaryState
from canary.models import CanaryRelease

logger = logging.getLogger(__name__)

LABELS = ["tenant", "workflow", "release"]


class CanaryCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering the collector reads no database."""
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        families = _families()
        state, weight, budget = families["state"], families["weight"], families["budget"]
        runs, errors, p95 = families["runs"], families["errors"], families["p95"]
        try:
            releases = list(_visible_releases())
        except Exception:  # /metrics answers with the process series whatever the database does
            logger.exception("canary gauges skipped: the releases could not be read")
            releases = []
        for release in releases:
            labels = [release.workflow.tenant.slug, release.workflow.name, str(release.pk)]
            for name in CanaryState.values:
                state.add_metric([*labels, name], 1.0 if release.state == name else 0.0)
            weight.add_metric(labels, float(release.weight))
            analysis = release.analysis or {}
            budget.add_metric(labels, float(analysis.get("error_budget", {}).get("remaining", 1.0)))
            for arm in Arm.values:
                figures = analysis.get("arms", {}).get(arm)
                if not figures:
                    continue
                runs.add_metric([*labels, arm], float(figures["executions"]))
                if figures.get("error_rate_pct") is not None:
                    errors.add_metric([*labels, arm], figures["error_rate_pct"] / 100.0)
                if figures.get("p95_ms") is not None:
                    p95.add_metric([*labels, arm], figures["p95_ms"] / 1000.0)
        yield from families.values()


def _families() -> dict[str, GaugeMetricFamily]:
    arms = [*LABELS, "arm"]
    return {
        "state": GaugeMetricFamily(
            "mc_canary_state", "1 for the state each canary release is in, 0 for the others.", labels=[*LABELS, "state"]
        ),
        "weight": GaugeMetricFamily(
            "mc_canary_weight", "Percent of unpinned runs routed to the canary arm.", labels=LABELS
        ),
        "budget": GaugeMetricFamily(
            "mc_canary_error_budget_remaining",
            "Share of the release's error budget left (1 untouched, 0 spent), at its last analysis.",
            labels=LABELS,
        ),
        "runs": GaugeMetricFamily(
            "mc_canary_window_executions", "Runs of each arm in the analysis window, at the last analysis.", labels=arms
        ),
        "errors": GaugeMetricFamily(
            "mc_canary_error_ratio", "Failed share of each arm's runs in the analysis window (0 to 1).", labels=arms
        ),
        "p95": GaugeMetricFamily(
            "mc_canary_p95_seconds", "p95 duration of each arm's runs in the analysis window.", labels=arms
        ),
    }


def _visible_releases() -> Iterator[CanaryRelease]:
    recent = timezone.now() - timedelta(seconds=ENDED_VISIBLE_S)
    return (
        CanaryRelease.objects.filter(Q(state__in=ACTIVE_STATES) | Q(ended_at__gte=recent))
        .select_related("workflow__tenant")
        .only("id", "state", "weight", "analysis", "workflow__name", "workflow__tenant__slug")
        .order_by("id")
        .iterator()
    )
