"""The input document's plan figures: rounded up to six decimals, so a budget check stays conservative."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from policy.engine import RegoEngine, load_bundle
from policy.services import BUNDLES_DIR, policy_input


def _document(estimated_usd: float) -> dict:
    plan = {"estimated_usd": estimated_usd, "estimated_seconds": 12.3456789, "steps": []}
    return policy_input(
        stage="execute",
        tenant=SimpleNamespace(slug="acme"),
        actor=None,
        manifest={},
        plan=plan,
        mode="run",
        region="eu-west-1",
        limits={},
        usage={"running_steps": {}, "spend_today_usd": 0},
    )


@pytest.mark.parametrize(
    ("estimate", "read_as"),
    [(1.5000001, 1.500001), (1.5, 1.5), (0.1 + 0.2, 0.3), (2, 2), (0.0, 0.0)],
)
def test_plan_figures_are_rounded_up_to_six_decimals(estimate: float, read_as: float) -> None:
    document = _document(estimate)
    assert document["plan"]["estimated_usd"] == read_as
    assert document["plan"]["estimated_seconds"] == 12.345679


def test_an_estimate_a_hair_over_the_cap_still_denies() -> None:
    with RegoEngine([load_bundle(BUNDLES_DIR / "budget", name="budget")]) as engine:
        (over,) = engine.evaluate_all(_document(1.5000001))
        (at,) = engine.evaluate_all(_document(1.5))
    assert [item["code"] for item in over.deny] == ["run_cost_exceeded"]
    assert at.deny == []
