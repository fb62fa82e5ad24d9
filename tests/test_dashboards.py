"""deploy/grafana/*.json: importable Grafana dashboards whose queries use only series MC exports.

The names come from the metric objects themselves (mc_project/metrics.py, the scrape-time
collectors the apps register, and django-prometheus' middleware), so renaming a series without
its dashboards fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django_prometheus.middleware import Metrics
from prometheus_client.metrics import MetricWrapperBase

from mc_project import metrics

DASHBOARDS = sorted((Path(__file__).resolve().parent.parent / "deploy" / "grafana").glob("*.json"))
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum"),
}
# What is left of an expression once strings, matchers, ranges and grouping clauses are gone:
# identifiers that are not followed by "(" are series names, except these keywords.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def exported() -> set[str]:
    """Every sample name MC's /metrics can show."""
    objects = [*vars(metrics).values(), *vars(Metrics.get_instance()).values()]
    collectors = [wrapper for wrapper in objects if isinstance(wrapper, MetricWrapperBase)]
    collectors += metrics._SCRAPE_COLLECTORS  # read from the database at scrape time (canary.metrics)
    names = set()
    for collector in collectors:
        for family in collector.describe():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def series_in(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    tokens = re.findall(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {token for token in tokens if token not in KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", token)}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return [panel for panel in found if panel["type"] != "row"]


def test_there_are_the_three_dashboards() -> None:
    assert [path.name for path in DASHBOARDS] == [
        "mc-canary.json",
        "mc-overview.json",
        "mc-policy.json",
        "mc-receipts.json",
    ]


def test_the_expression_parser_finds_series_names() -> None:
    expr = 'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y(z)"}[5m]))) / on (i) b offset 1h and bool c:d'
    assert series_in(expr) == {"a_bucket", "b", "c:d"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_a_dashboard_queries_only_series_mc_exports(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    names = exported()

    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert [item["name"] for item in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            used = series_in(target["expr"])
            assert used, f"{panel['title']}: no series in {target['expr']}"
            assert used <= names, f"{panel['title']}: {sorted(used - names)} are not exported by MC"
