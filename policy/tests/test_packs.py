"""The four policy packs (residency, pii, budget, quotas) and the Rego test runner.

Pure Python, no database: the Rego tests of each bundle run through policy.testing,
and the packs are also evaluated directly on regopy with inputs shaped like the
engine's (input document mc.policy/v1, docs/policy.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from regopy import Interpreter

from policy import testing
from policy.testing import LOAD, RegoTestResult, run_all, run_bundle_tests

BUNDLES = Path(__file__).resolve().parent.parent / "bundles"
PACKS = ("residency", "pii", "budget", "quotas")
MIN_TESTS_PER_PACK = 18


def evaluate(pack: str, document: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(deny, warn) of one pack for an input, each sorted by (code, path)."""
    interpreter = Interpreter()
    interpreter.add_module("policy.rego", (BUNDLES / pack / "policy.rego").read_text())
    interpreter.add_data_json((BUNDLES / pack / "data.json").read_text())
    interpreter.set_input_term(json.dumps(document))
    found = []
    for rule in ("deny", "warn"):
        bindings = interpreter.query(f"x := data.mc.{pack}.{rule}").results[0].bindings
        assert "x" in bindings, f"data.mc.{pack}.{rule} is undefined"
        found.append(sorted(bindings["x"], key=lambda finding: (finding["code"], finding["path"])))
    return found[0], found[1]


def example_input(**overrides: Any) -> dict[str, Any]:
    """The contract's example input: allowed by every pack with the default data."""
    document: dict[str, Any] = {
        "version": "mc.policy/v1",
        "stage": "plan",
        "request": {
            "tenant": "acme",
            "actor": "alice",
            "mode": "run",
            "region": "eu-west-1",
            "resource_classes": ["small", "large"],
        },
        "manifest": {
            "name": "nightly",
            "version": "1.0.0",
            "region": "eu-west-1",
            "labels": {},
            "inputs": {},
            "tasks": [
                {"id": "a", "uses": "pkg:mc/echo@1", "data_classes": ["pii"]},
                {"id": "b", "uses": "pkg:mc/echo@1", "needs": ["a"], "resource_class": "large"},
            ],
        },
        "plan": {
            "estimated_usd": 0.42,
            "estimated_seconds": 12.5,
            "steps": [
                {
                    "id": "a",
                    "uses": "pkg:mc/echo@1",
                    "resource_class": "small",
                    "shards": 1,
                    "needs": [],
                    "side_effects": False,
                    "data_classes": ["pii"],
                    "regions": [],
                },
                {
                    "id": "b",
                    "uses": "pkg:mc/echo@1",
                    "resource_class": "large",
                    "shards": 1,
                    "needs": ["a"],
                    "side_effects": False,
                    "data_classes": [],
                    "regions": [],
                },
            ],
            "side_effects": [],
            "data_classes": ["pii"],
        },
        "usage": {"running_steps": {"small": 3, "medium": 0, "large": 1}, "spend_today_usd": 12.0},
        "limits": {
            "max_cost_per_run_usd": 1.5,
            "daily_spend_cap_usd": 50.0,
            "max_concurrent_steps": {"small": 20, "medium": 10, "large": 2},
            "max_large_steps_per_run": 5,
            "allowed_regions": ["eu-west-1", "eu-central-1"],
            "pii_regions": ["eu-west-1"],
        },
    }
    document.update(overrides)
    return document


def codes(findings: list[dict[str, str]]) -> list[str]:
    return [finding["code"] for finding in findings]


# --- the Rego tests of each bundle ---


@pytest.fixture(scope="module")
def rego_results() -> dict[str, list[RegoTestResult]]:
    return run_all(BUNDLES)


@pytest.mark.parametrize("pack", PACKS)
def test_rego_tests_pass(rego_results: dict[str, list[RegoTestResult]], pack: str) -> None:
    failures = [f"{r.package}.{r.name}: {r.error}" for r in rego_results[pack] if not r.passed]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("pack", PACKS)
def test_each_pack_has_enough_rego_tests(rego_results: dict[str, list[RegoTestResult]], pack: str) -> None:
    names = {r.name for r in rego_results[pack]}
    assert len(names) >= MIN_TESTS_PER_PACK
    assert {r.package for r in rego_results[pack]} == {f"mc.{pack}_test"}


@pytest.mark.parametrize("pack", PACKS)
def test_bundle_layout(pack: str) -> None:
    bundle = BUNDLES / pack
    assert json.loads((bundle / ".manifest").read_text()) == {"revision": "2026.11.23-1", "roots": [f"mc/{pack}"]}
    assert list(json.loads((bundle / "data.json").read_text())["mc"]) == [pack]
    assert (bundle / "policy.rego").read_text().count(f"\npackage mc.{pack}\n") == 1


# --- the packs on representative inputs ---


@pytest.mark.parametrize("pack", PACKS)
def test_example_input_is_allowed(pack: str) -> None:
    deny, _ = evaluate(pack, example_input())
    assert deny == []


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("document", [{}, {"version": "mc.policy/v1"}, {"plan": None, "request": "x"}])
def test_partial_input_gives_a_defined_empty_deny(pack: str, document: dict[str, Any]) -> None:
    deny, _ = evaluate(pack, document)
    assert deny == []


def test_residency_denials() -> None:
    document = example_input(request={"region": "RU-Central-1"})
    document["manifest"]["tasks"][1]["regions"] = ["eu-west-1"]
    deny, warn = evaluate("residency", document)
    assert deny == [
        {
            "code": "region_banned",
            "message": 'requested region "ru-central-1" is banned: it matches the banned entry "RU"',
            "path": "/request/region",
        },
        {
            "code": "region_mismatch",
            "message": 'requested region "ru-central-1" differs from the workflow\'s region "eu-west-1"',
            "path": "/request/region",
        },
        {
            "code": "task_region_excluded",
            "message": 'task "b" may only run in eu-west-1, not in the requested region "ru-central-1"',
            "path": "/manifest/tasks/1/regions",
        },
    ]
    assert warn == []


def test_residency_warns_without_workflow_region() -> None:
    document = example_input()
    del document["manifest"]["region"]
    deny, warn = evaluate("residency", document)
    assert deny == []
    assert [(w["code"], w["path"]) for w in warn] == [("region_unset", "/manifest/region")]


def test_pii_denials_and_redaction_warning() -> None:
    document = example_input(request={"region": "eu-central-1"})
    document["plan"]["steps"][1]["side_effects"] = True
    deny, warn = evaluate("pii", document)
    assert deny == [
        {
            "code": "pii_export_unapproved",
            "message": 'step "b" has side effects and receives pii data from "a"; '
            "the workflow must set pii_export_approved: true to allow it",
            "path": "/plan/steps/1",
        },
        {
            "code": "pii_region",
            "message": 'steps "a" handle pii data, which may only be processed in eu-west-1; '
            'the run asks for "eu-central-1"',
            "path": "/request/region",
        },
    ]
    assert warn == [
        {
            "code": "pii_redacted",
            "message": 'outputs of the pii steps "a" will be redacted from logs',
            "path": "/plan/steps",
        }
    ]


def test_pii_export_allowed_when_approved() -> None:
    document = example_input()
    document["plan"]["steps"][1]["side_effects"] = True
    document["manifest"]["pii_export_approved"] = True
    deny, _ = evaluate("pii", document)
    assert deny == []


def test_budget_denials() -> None:
    document = example_input(plan={"estimated_usd": 2.1}, usage={"spend_today_usd": 48.5})
    deny, warn = evaluate("budget", document)
    assert deny == [
        {
            "code": "daily_spend_exceeded",
            "message": "estimated cost $2.10 on top of $48.50 spent today makes $50.60, over the daily cap $50.00",
            "path": "/usage/spend_today_usd",
        },
        {
            "code": "run_cost_exceeded",
            "message": "estimated cost $2.10 exceeds the cap $1.50 per run",
            "path": "/plan/estimated_usd",
        },
    ]
    assert warn == []


def test_budget_warnings_at_80_percent() -> None:
    document = example_input(plan={"estimated_usd": 1.2}, usage={"spend_today_usd": 38.8})
    deny, warn = evaluate("budget", document)
    assert deny == []
    assert [(w["code"], w["path"]) for w in warn] == [
        ("daily_spend_near_cap", "/usage/spend_today_usd"),
        ("run_cost_near_cap", "/plan/estimated_usd"),
    ]
    assert warn[1]["message"] == "estimated cost $1.20 is 80% of the cap $1.50 per run"


def test_budget_defaults_apply_when_the_tenant_sets_no_limits() -> None:
    document = example_input(plan={"estimated_usd": 1.6}, limits={})
    deny, _ = evaluate("budget", document)
    assert codes(deny) == ["run_cost_exceeded"]


def test_quotas_plan_denials() -> None:
    document = example_input(limits={"max_large_steps_per_run": 2, "max_concurrent_steps": {"small": 0}})
    document["plan"]["steps"][1]["shards"] = 3
    deny, warn = evaluate("quotas", document)
    assert deny == [
        {
            "code": "large_steps_exceeded",
            "message": "the plan has 3 large steps (counting shards); the limit is 2 per run",
            "path": "/plan/steps",
        },
        {
            "code": "resource_class_disabled",
            "message": 'step "a" uses resource class "small", '
            "which this tenant may not use (max_concurrent_steps is 0)",
            "path": "/plan/steps/0/resource_class",
        },
    ]
    assert warn == []


def test_quotas_dispatch() -> None:
    step = example_input()["plan"]["steps"][1]
    allowed = example_input(stage="dispatch", plan={"steps": [step]})
    assert evaluate("quotas", allowed)[0] == []

    busy = example_input(
        stage="dispatch", plan={"steps": [step]}, usage={"running_steps": {"large": 2}, "spend_today_usd": 0}
    )
    deny, _ = evaluate("quotas", busy)
    assert deny == [
        {
            "code": "quota_exceeded",
            "message": 'starting step "b" would make 3 "large" steps run at once for this tenant; the limit is 2',
            "path": "/usage/running_steps/large",
        }
    ]


def test_all_packs_load_into_one_interpreter_with_their_tests() -> None:
    """The engine may load every pack at once; test modules must not break that."""
    interpreter = Interpreter()
    data: dict[str, Any] = {"mc": {}}
    for pack in PACKS:
        for module in sorted((BUNDLES / pack).glob("*.rego")):
            interpreter.add_module(f"{pack}/{module.name}", module.read_text())
        data["mc"].update(json.loads((BUNDLES / pack / "data.json").read_text())["mc"])
    # One document: rego-cpp 1.5.2 does not merge data added in several calls under "mc".
    interpreter.add_data_json(json.dumps(data))
    interpreter.set_input_term(json.dumps(example_input(plan={"estimated_usd": 9})))
    bindings = interpreter.query("x := [data.mc.residency.deny, data.mc.budget.deny]").results[0].bindings
    residency_deny, budget_deny = bindings["x"]
    assert residency_deny == []
    assert codes(budget_deny) == ["run_cost_exceeded"]


# --- the runner ---


def write_bundle(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


POLICY = "package demo\n\nimport rego.v1\n\nlimit := data.demo.limit\n\nover if input.n > limit\n"


@pytest.mark.parametrize("isolate", [True, False])
def test_runner_reports_pass_false_and_undefined(tmp_path: Path, isolate: bool) -> None:
    bundle = write_bundle(
        tmp_path,
        {
            "policy.rego": POLICY,
            "data.json": '{"demo": {"limit": 3}}',
            "policy_test.rego": "package demo_test\n\nimport rego.v1\n\nimport data.demo\n\n"
            "test_over if demo.over with input.n as 4\n\n"
            "test_not_over if demo.over with input.n as 2\n\n"
            "test_false := false\n\n"
            "test_data if demo.limit == 3\n",
        },
    )
    results = {r.name: r for r in run_bundle_tests(bundle, isolate=isolate)}
    assert results == {
        "test_over": RegoTestResult("demo_test", "test_over", True),
        "test_not_over": RegoTestResult(
            "demo_test", "test_not_over", False, "undefined (a body expression was false or undefined)"
        ),
        "test_false": RegoTestResult("demo_test", "test_false", False, "evaluated to false, not true"),
        "test_data": RegoTestResult("demo_test", "test_data", True),
    }


def test_runner_reports_an_evaluation_error_for_its_test_only(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path,
        {"x_test.rego": "package demo_test\n\nimport rego.v1\n\ntest_ok if true\n\ntest_error if nosuchfn(1)\n"},
    )
    assert run_bundle_tests(bundle, isolate=False) == [
        RegoTestResult("demo_test", "test_ok", True),
        RegoTestResult("demo_test", "test_error", False, "evaluation error: Function not found: nosuchfn"),
    ]


def test_runner_reports_syntax_error_with_file_line_and_column(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path,
        {
            "policy.rego": POLICY,
            "broken_test.rego": "package demo_test\n\nimport rego.v1\n\ntest_a if {\n  x := \n}\n",
        },
    )
    results = run_bundle_tests(bundle)
    assert results[0].name == LOAD
    assert not results[0].passed
    assert results[0].error == f"{bundle / 'broken_test.rego'}:6:5: Invalid assignment operator"
    assert results[1:] == [RegoTestResult("demo_test", "test_a", False, "not run: the bundle did not load")]


def test_runner_reports_invalid_data_json(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, {"policy.rego": POLICY, "data.json": '{"demo":\n  {"limit": }}'})
    [load] = run_bundle_tests(bundle, isolate=False)
    assert load.name == LOAD
    assert load.error is not None
    assert load.error.startswith(f"{bundle / 'data.json'}:2:13: invalid JSON")


def test_runner_refuses_with_input_as_which_crashes_rego_cpp(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path,
        {
            "policy.rego": POLICY,
            "policy_test.rego": "package demo_test\n\nimport rego.v1\n\nimport data.demo\n\n"
            "# `with input as` in a comment is fine\n"
            'test_a if demo.over with input\n  as {"n": 4}\n',
        },
    )
    results = run_bundle_tests(bundle, isolate=False)
    assert results[0].error is not None
    assert results[0].error.startswith(f"{bundle / 'policy_test.rego'}:8:21: 'with input as' crashes rego-cpp")
    assert [r.name for r in results] == [LOAD, "test_a"]


def test_runner_survives_a_crash_of_rego_cpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real rego-cpp segfault in the child becomes failed results, not a dead caller."""
    bundle = write_bundle(
        tmp_path,
        {"policy.rego": POLICY, "policy_test.rego": "package demo_test\n\nimport rego.v1\n\ntest_a if true\n"},
    )
    crash = (
        "from regopy import Interpreter\n"
        "i = Interpreter()\n"
        "i.add_module('a.rego', 'package a\\nv if { input.q > 1 }\\nt if { v with input as {\"q\": 2} }\\n')\n"
        "print(str(i.query('x := data.a.t')))\n"
    )
    monkeypatch.setattr(testing, "_child_command", lambda _bundle: [sys.executable, "-c", crash])
    results = run_bundle_tests(bundle)
    assert [(r.name, r.passed) for r in results] == [(LOAD, False), ("test_a", False)]
    assert results[0].error == "rego-cpp crashed (SIGSEGV) while running the bundle"
