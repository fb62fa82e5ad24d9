"""deploy/prometheus/alerts.yml: valid rules (promtool check rules) that fire when they should (promtool test rules).

promtool comes with Debian's ``prometheus`` package; ``.ci/services`` installs it. Without
it the test is skipped on a developer's machine, and fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/services installs it (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


@pytest.mark.parametrize(
    "command", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]], ids=["check", "test"]
)
def test_promtool_accepts_the_alert_rules(promtool: str, command: list[str]) -> None:
    result = subprocess.run([promtool, *command], cwd=RULES, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_burn_alert_uses_the_error_budget_of_the_slo() -> None:
    import yaml

    slos = {
        slo["name"]: slo for slo in yaml.safe_load((RULES.parent.parent / "docs/slo/MC_SLO.yaml").read_text())["slos"]
    }
    success = slos["executions-success"]
    budget = success["error_budget"]["budget"]
    assert budget == pytest.approx(1 - success["objective"]["target"])
    assert success["objective"]["window"] == "30d"
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    (burn,) = [
        rule for group in rules["groups"] for rule in group["rules"] if rule.get("alert") == "MCErrorBudgetBurnHigh"
    ]
    assert f"/ {budget} / 720 > {success['error_budget']['alert']['burn_per_hour_above']:.2f}" in burn["expr"]
