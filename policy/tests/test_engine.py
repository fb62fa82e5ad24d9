"""The policy engine: fail-closed decisions, RegoEngine and OpaEngine agreeing.

Pure Python, no database: every bundle is written under tmp_path.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policy.engine import (
    POLICY_ERROR,
    Bundle,
    BundleError,
    Decision,
    OpaEngine,
    PolicyEngine,
    RegoEngine,
    input_digest,
    load_bundle,
)
from policy.tests.engine_helpers import (
    assert_policy_error,
    comparable,
    pack_dir,
    policy_input,
)
from policy.tests.opa_standin import OpaStandIn
from workflows.manifest import canonical_json

# --- decisions -----------------------------------------------------------------------


def test_allow_warn_and_deny(budget: Bundle, engine_for: Callable[..., PolicyEngine]) -> None:
    engine = engine_for([budget])

    allow = engine.evaluate("budget", policy_input(plan__estimated_usd=0.42))
    warn = engine.evaluate("mc.budget", policy_input(plan__estimated_usd=1.3))
    deny = engine.evaluate("budget", policy_input(plan__estimated_usd=2.1))

    assert (allow.result, allow.deny, allow.warn, allow.error) == ("allow", [], [], None)
    assert warn.result == "warn"
    assert warn.warn == [
        {"code": "cost_near_cap", "message": "estimated cost $1.3 is near the cap $1.5", "path": "/plan/estimated_usd"}
    ]
    assert deny.result == "deny"
    assert deny.deny == [
        {
            "code": "cost_over_cap",
            "message": "estimated cost $2.1 exceeds the cap $1.5 per run",
            "path": "/plan/estimated_usd",
        }
    ]
    assert (deny.pack, deny.revision, deny.bundle_digest) == ("budget", "r1", budget.digest)


def test_deny_wins_over_warn_and_explanations_are_sorted(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    steps = [{"id": f"s{n}", "resource_class": "huge"} for n in (2, 0, 1)]
    doc = policy_input(plan__estimated_usd=1.4, plan__steps=steps, limits={"max_cost_per_run_usd": 1.5})

    decision = engine_for([budget]).evaluate("budget", doc)

    assert decision.result == "deny"
    assert [d["path"] for d in decision.deny] == ["/plan/steps/0", "/plan/steps/1", "/plan/steps/2"]
    assert [w["code"] for w in decision.warn] == ["cost_near_cap"]


def test_tenant_limits_override_data_defaults(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    doc = policy_input(plan__estimated_usd=2.1, limits={"max_cost_per_run_usd": 5})

    assert engine_for([budget]).evaluate("budget", doc).result == "allow"


def test_input_digest_is_sha256_of_canonical_json(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    doc = policy_input()
    expected = "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()

    assert input_digest(doc) == expected
    assert engine_for([budget]).evaluate("budget", doc).input_digest == expected


def test_strings_with_quotes_and_unicode_reach_the_policy_intact(
    tmp_path: Path, engine_for: Callable[..., Any]
) -> None:
    source = (
        "package mc.echo\n\nimport rego.v1\n\nwarn := set()\n\n"
        'deny contains {"code": "echo", "message": input.request.actor, "path": "/request/actor"} if {\n'
        '\tinput.request.tenant == "acme \\"q\\" \\\\ r\u00e9gion"\n}\n'
    )
    bundle = load_bundle(pack_dir(tmp_path, "echo", source))
    actor = 'al"ice \\ \u2603\n'

    decision = engine_for([bundle]).evaluate(
        "echo", policy_input(request__tenant='acme "q" \\ r\u00e9gion', request__actor=actor)
    )

    assert decision.deny == [{"code": "echo", "message": actor, "path": "/request/actor"}]


def test_floats_keep_their_precision(tmp_path: Path, budget: Bundle, engine_for: Callable[..., Any]) -> None:
    engine = engine_for([budget])

    assert engine.evaluate("budget", policy_input(plan__estimated_usd=1.5000001)).result == "deny"
    assert engine.evaluate("budget", policy_input(plan__estimated_usd=1.5)).result == "warn"


DENY_HEAD = (
    'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains {"code": "c", "message": m, "path": ""} if {\n'
)

UNDEFINED_OR_BROKEN = {
    "no_deny_rule": ("package mc.p\n\nimport rego.v1\n\nwarn := set()\n", "data.mc.p.deny is undefined"),
    "no_warn_rule": ("package mc.p\n\nimport rego.v1\n\ndeny := set()\n", "data.mc.p.warn is undefined"),
    "conditional_deny_undefined": (
        "package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny := {1} if input.nothing_here\n",
        "data.mc.p.deny is undefined",
    ),
    "deny_is_a_boolean": ("package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny := false\n", "not a set"),
    "item_without_message": (
        'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains {"code": "x"} if true\n',
        "without a string message",
    ),
    "item_not_an_object": (
        'package mc.p\n\nimport rego.v1\n\nwarn := set()\n\ndeny contains "nope" if true\n',
        "not an object with code and message",
    ),
    "conflicting_complete_rule": (
        "package mc.p\n\nimport rego.v1\n\nwarn := set()\n\nx := 1 if input.version\n\nx := 2 if input.version\n\n"
        "deny := {x}\n",
        "evaluation failed",
    ),
    "builtin_error": (
        DENY_HEAD + '\tm := sprintf("%v", [1 / count(input.plan.side_effects)])\n}\n',
        "divide by zero",
    ),
    "type_error_in_rule": (
        DENY_HEAD + "\tm := input.request.tenant + 1\n}\n",
        "evaluation failed",
    ),
}


@pytest.mark.parametrize("case", sorted(UNDEFINED_OR_BROKEN))
def test_undefined_or_broken_policies_fail_closed(tmp_path: Path, engine_for: Callable[..., Any], case: str) -> None:
    source, fragment = UNDEFINED_OR_BROKEN[case]
    bundle = load_bundle(pack_dir(tmp_path, "p", source))

    decision = engine_for([bundle]).evaluate("p", policy_input())

    assert_policy_error(decision, fragment)


def test_an_unknown_pack_fails_closed(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    decision = engine_for([budget]).evaluate("nosuch", policy_input())

    assert_policy_error(decision, "no bundle provides this pack")
    assert decision.pack == "nosuch"


def test_an_input_that_is_not_json_fails_closed(budget: Bundle, engine_for: Callable[..., Any]) -> None:
    decision = engine_for([budget]).evaluate("budget", policy_input(plan__estimated_usd=float("nan")))

    assert_policy_error(decision, "not canonical JSON")


def test_evaluate_all_returns_one_decision_per_pack_in_order(
    tmp_path: Path, budget: Bundle, engine_for: Callable[..., Any]
) -> None:
    broken = load_bundle(pack_dir(tmp_path, "broken", "package mc.broken\n\nwarn := set()\n"))

    decisions = engine_for([budget, broken]).evaluate_all(policy_input(plan__estimated_usd=2.0))

    assert [(d.pack, d.result) for d in decisions] == [("budget", "deny"), ("broken", "deny")]
    assert decisions[1].deny[0]["code"] == POLICY_ERROR


# --- RegoEngine specifics ------------------------------------------------------------

LOOP_REGO = """package mc.loop

import rego.v1

warn := set()

deny contains {"code": "never", "message": "never", "path": ""} if {
\tsome i in numbers.range(1, input.n)
\tsome j in numbers.range(1, input.n)
\ti * j == -1
}
"""


def test_a_runaway_policy_times_out_and_the_engine_recovers(
    tmp_path: Path, budget: Bundle, rego_engine_for: Callable[..., RegoEngine]
) -> None:
    loop = load_bundle(pack_dir(tmp_path, "loop", LOOP_REGO))
    engine = rego_engine_for([loop, budget], timeout_s=0.2)

    # ~1,000^2 iterations take ~2 s in rego-cpp; the caller gives up after 0.2 s.
    slow = engine.evaluate_all({**policy_input(), "n": 1000})

    assert_policy_error(slow[0], "timed out after 0.2s")
    assert slow[0].duration_ms == 200
    assert slow[1].result == "allow"  # the remaining pack ran on a fresh worker
    assert engine.evaluate("loop", {**policy_input(), "n": 3}).result == "allow"


def test_concurrent_evaluations_match_sequential_ones(
    budget: Bundle, rego_engine_for: Callable[..., RegoEngine]
) -> None:
    engine = rego_engine_for([budget])
    inputs = [policy_input(plan__estimated_usd=cost / 10) for cost in range(30)]
    expected = [comparable(engine.evaluate("budget", doc)) for doc in inputs]
    got: dict[int, Decision] = {}

    def run(offset: int) -> None:
        for index in range(offset, len(inputs), 6):
            got[index] = comparable(engine.evaluate("budget", inputs[index]))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [got[i] for i in range(len(inputs))] == expected


def test_two_bundles_cannot_provide_the_same_pack(budget: Bundle) -> None:
    with pytest.raises(ValueError, match="two bundles provide the pack 'budget'"):
        RegoEngine([budget, budget])


# --- both engines agree --------------------------------------------------------------


def test_rego_and_opa_engines_produce_identical_decisions(
    tmp_path: Path, budget: Bundle, rego_engine_for: Callable[..., RegoEngine], opa_for: Callable[..., Any]
) -> None:
    broken = load_bundle(
        pack_dir(tmp_path, "broken", UNDEFINED_OR_BROKEN["builtin_error"][0].replace("mc.p", "mc.broken"))
    )
    bundles = [budget, broken]
    rego_engine, (opa_engine, _) = rego_engine_for(bundles), opa_for(bundles)
    inputs = [
        policy_input(plan__estimated_usd=cost, plan__steps=[{"id": "h", "resource_class": "huge"}] * (cost > 2))
        for cost in (0.0, 0.42, 1.2, 1.5, 1.5000001, 2.5, 3)
    ]

    for doc in inputs:
        assert [comparable(d) for d in rego_engine.evaluate_all(doc)] == [
            comparable(d) for d in opa_engine.evaluate_all(doc)
        ]


# --- OpaEngine against the stand-in ----------------------------------------------------


def test_opa_engine_posts_the_input_to_the_pack_path_with_strict_builtin_errors(
    budget: Bundle, opa_for: Callable[..., Any]
) -> None:
    engine, standin = opa_for([budget])

    engine.evaluate("budget", policy_input())

    assert standin.requests == [{"path": "mc/budget", "params": {"strict-builtin-errors": ["true"]}}]


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("error500", "OPA answered 500: internal_error: simulated failure"),
        ("undefined", "data.mc.budget is undefined"),
        ("garbage", "not JSON"),
        ("slow", "OPA did not answer within 0.2s"),
    ],
)
def test_opa_failures_fail_closed(budget: Bundle, opa_for: Callable[..., Any], mode: str, fragment: str) -> None:
    engine, standin = opa_for([budget], timeout_s=0.2)
    standin.mode, standin.delay_s = mode, 1.0

    assert_policy_error(engine.evaluate("budget", policy_input()), fragment)


def test_an_unreachable_opa_fails_closed(budget: Bundle) -> None:
    standin = OpaStandIn([budget])  # bound to a port, never started
    standin.stop()

    with OpaEngine(standin.base_url, [budget], timeout_s=0.5) as engine:
        decision = engine.evaluate("budget", policy_input())

    assert_policy_error(decision, "OPA request failed: ConnectError")


# --- the project's packs, when they exist --------------------------------------------

PROJECT_BUNDLES = Path(__file__).resolve().parent.parent / "bundles"


def _loadable_project_bundles() -> list[Bundle]:
    bundles = []
    for directory in sorted(PROJECT_BUNDLES.glob("*")) if PROJECT_BUNDLES.is_dir() else []:
        try:
            bundles.append(load_bundle(directory))
        except BundleError:
            continue  # being written concurrently; test_packs.py owns their correctness
    return bundles


def test_smoke_project_packs_evaluate_without_policy_errors(
    rego_engine_for: Callable[..., RegoEngine], opa_for: Callable[..., Any]
) -> None:
    bundles = _loadable_project_bundles()
    if not bundles:
        pytest.skip("no loadable bundles under policy/bundles yet")
    doc = policy_input(manifest={"name": "wf", "version": "1.0.0", "region": "eu-west-1", "tasks": []})

    decisions = rego_engine_for(bundles).evaluate_all(doc)

    assert [d.pack for d in decisions] == [b.name for b in bundles]
    assert all(d.error is None for d in decisions), [d.error for d in decisions]
    assert [comparable(d) for d in decisions] == [comparable(d) for d in opa_for(bundles)[0].evaluate_all(doc)]
