"""Bundles, inputs and engine fixtures shared by the policy engine tests."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path
from typing import Any

from policy.engine import (
    POLICY_ERROR,
    Decision,
)

BUDGET_REGO = """package mc.budget

import rego.v1

cap := object.get(input.limits, "max_cost_per_run_usd", data.mc.budget.defaults.max_cost_per_run_usd)

deny contains item if {
\tinput.plan.estimated_usd > cap
\titem := {
\t\t"code": "cost_over_cap",
\t\t"message": sprintf("estimated cost $%v exceeds the cap $%v per run", [input.plan.estimated_usd, cap]),
\t\t"path": "/plan/estimated_usd",
\t}
}

deny contains item if {
\tsome i, step in input.plan.steps
\tstep.resource_class == "huge"
\titem := {
\t\t"code": "huge_step",
\t\t"message": sprintf("step %q is huge", [step.id]),
\t\t"path": sprintf("/plan/steps/%d", [i]),
\t}
}

warn contains item if {
\tinput.plan.estimated_usd >= 0.8 * cap
\tinput.plan.estimated_usd <= cap
\titem := {
\t\t"code": "cost_near_cap",
\t\t"message": sprintf("estimated cost $%v is near the cap $%v", [input.plan.estimated_usd, cap]),
\t\t"path": "/plan/estimated_usd",
\t}
}
"""

BUDGET_TEST_REGO = """package mc.budget_test

import rego.v1

test_nothing if true
"""


def write_bundle(root: Path, files: dict[str, str | bytes], manifest: dict[str, Any] | None = None) -> Path:
    """Write a bundle directory; ``.manifest`` defaults to roots ["mc/<dirname>"]."""
    root.mkdir(parents=True)
    content: dict[str, str | bytes] = {
        ".manifest": json.dumps(manifest or {"revision": "r1", "roots": [f"mc/{root.name}"]})
    }
    content.update(files)
    for rel, text in content.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def budget_dir(tmp_path: Path) -> Path:
    return write_bundle(
        tmp_path / "budget",
        {
            "policy.rego": BUDGET_REGO,
            "policy_test.rego": BUDGET_TEST_REGO,
            "mc/budget/data.json": json.dumps({"defaults": {"max_cost_per_run_usd": 1.5}}),
        },
    )


def pack_dir(tmp_path: Path, name: str, rego_source: str, data: dict[str, Any] | None = None) -> Path:
    files: dict[str, str | bytes] = {"policy.rego": rego_source}
    if data is not None:
        files[f"mc/{name}/data.json"] = json.dumps(data)
    return write_bundle(tmp_path / name, files)


def make_targz(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for file in sorted(source.rglob("*")):
            tar.add(file, arcname=file.relative_to(source).as_posix(), recursive=False)
    return target


def policy_input(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": "mc.policy/v1",
        "stage": "plan",
        "request": {
            "tenant": "acme",
            "actor": "alice",
            "mode": "run",
            "region": "eu-west-1",
            "resource_classes": ["small"],
        },
        "manifest": {"name": "wf", "version": "1.0.0", "tasks": [{"id": "a", "uses": "pkg:mc/echo@1"}]},
        "plan": {
            "estimated_usd": 0.42,
            "estimated_seconds": 12.5,
            "steps": [{"id": "a", "uses": "pkg:mc/echo@1", "resource_class": "small", "shards": 1, "needs": []}],
            "side_effects": [],
            "data_classes": [],
        },
        "usage": {"running_steps": {"small": 0}, "spend_today_usd": 0.0},
        "limits": {},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            doc[section][field] = value
        else:
            doc[section] = value
    return doc


def comparable(decision: Decision) -> Decision:
    """Drop what two engines may legitimately differ in: timing, and the wording of a failure."""
    if decision.error is None:
        return dataclasses.replace(decision, duration_ms=0.0)
    failed = [{**item, "message": "(failure)"} for item in decision.deny]
    return dataclasses.replace(decision, duration_ms=0.0, deny=failed, error="(failure)")


def assert_policy_error(decision: Decision, fragment: str) -> None:
    assert decision.result == "deny"
    assert [item["code"] for item in decision.deny] == [POLICY_ERROR]
    assert decision.warn == []
    assert decision.error is not None
    assert fragment in decision.error, decision.error
    assert fragment in decision.deny[0]["message"]
