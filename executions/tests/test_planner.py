"""The dry-run plan: stages, critical path, costs, matrix shards, quota, and the graph helpers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from executions.packages import Cost, PackageRegistry, TaskPackage, UnknownPackage, default_registry
from executions.planner import (
    CRITICAL_PRIORITY,
    SLACK_PRIORITY,
    matrix_shards,
    plan_build,
    step_priorities,
    topological_order,
    transitive_needs,
)


def sleep(task_id: str, seconds: float, needs: list[str] | None = None, **more: Any) -> dict[str, Any]:
    return {"id": task_id, "uses": "pkg:mc/sleep@1", "needs": needs or [], "with": {"seconds": seconds}, **more}


def manifest(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "plan-test", "version": "1.0.0", "tasks": list(tasks), **top}


def diamond() -> dict[str, Any]:
    """fetch -> (shout, wait) -> report, with wait the long branch."""
    return manifest(
        sleep("fetch", 1),
        sleep("shout", 2, ["fetch"]),
        sleep("wait", 10, ["fetch"]),
        sleep("report", 1, ["shout", "wait"]),
    )


def test_stages_are_longest_path_depths() -> None:
    doc = manifest(sleep("d", 1, ["c", "a"]), sleep("a", 1), sleep("c", 1, ["b"]), sleep("b", 1, ["a"]), sleep("e", 1))

    plan = plan_build(doc)

    assert plan.stages == [["a", "e"], ["b"], ["c"], ["d"]]
    assert [(s.id, s.stage) for s in plan.steps] == [("a", 0), ("e", 0), ("b", 1), ("c", 2), ("d", 3)]


def test_the_critical_path_is_the_longest_chain_of_estimates() -> None:
    plan = plan_build(diamond())

    assert plan.critical_path == ["fetch", "wait", "report"]
    assert plan.estimated_seconds == 12.0
    assert [s.estimated_seconds for s in plan.steps] == [1.0, 2.0, 10.0, 1.0]


def test_critical_path_ties_go_to_the_earlier_task() -> None:
    doc = manifest(sleep("x", 5), sleep("y", 5), sleep("z", 1, ["y", "x"]))

    assert plan_build(doc).critical_path == ["x", "z"]
    assert plan_build(manifest(sleep("p", 3), sleep("q", 3))).critical_path == ["p"]


def test_steps_without_slack_get_the_critical_priority() -> None:
    priorities = step_priorities(plan_build(diamond()).as_dict())

    assert priorities == {"fetch": CRITICAL_PRIORITY, "shout": SLACK_PRIORITY, "wait": CRITICAL_PRIORITY, "report": 0}


def test_every_longest_path_is_critical_and_waves_count() -> None:
    """Ties are all critical; a matrix task in waves of max_parallel is as long as its waves."""
    doc = manifest(
        sleep("x", 5),
        sleep("y", 5),
        sleep("z", 1, ["y", "x"]),
        sleep("m", 2, strategy={"matrix": {"n": [1, 2, 3]}, "max_parallel": 1}),
    )

    assert step_priorities(plan_build(doc).as_dict()) == {"x": 0, "y": 0, "z": 0, "m": 0}  # m: 3 waves of 2 s
    assert step_priorities({}) == {}


def test_costs_use_the_package_estimate_per_resource_class() -> None:
    doc = manifest(sleep("a", 10), sleep("b", 10, resource_class="large"))

    plan = plan_build(doc)

    assert [s.estimated_usd for s in plan.steps] == [pytest.approx(0.01), pytest.approx(0.16)]
    assert plan.estimated_usd == pytest.approx(0.17)
    assert [s.queue for s in plan.steps] == ["mc.small", "mc.large"]


def test_with_values_holding_expressions_get_the_default_cost() -> None:
    doc = manifest(sleep("a", "${{ inputs.delay }}"), inputs={"delay": {"type": "number", "default": 99}})

    [step] = plan_build(doc).steps

    assert step.estimated_seconds == default_registry().resolve("pkg:mc/sleep@1").cost["small"].seconds


def test_task_settings_and_defaults_are_carried_over() -> None:
    undo = {"uses": "pkg:mc/echo@1", "with": {"message": "undo"}}
    doc = manifest(sleep("a", 1), sleep("b", 1, ["a"], retries=3, timeout_seconds=60, compensate=undo))

    a, b = plan_build(doc).steps

    assert (a.retries, a.timeout_seconds, a.resource_class, a.compensate, a.needs) == (0, 3600, "small", None, [])
    assert (b.retries, b.timeout_seconds, b.compensate, b.needs) == (3, 60, "pkg:mc/echo@1", ["a"])


def test_matrix_tasks_have_shards_that_cost_each_but_run_in_parallel() -> None:
    sharded = sleep("s", 10, strategy={"matrix": {"part": [1, 2, 3], "region": ["eu", "us"]}})
    doc = manifest(sharded, sleep("t", 1, ["s"]))

    plan = plan_build(doc)

    s, t = plan.steps
    assert s.shards == 6 and t.shards == 1
    assert s.estimated_seconds == 10.0  # one attempt of one shard
    assert s.estimated_usd == pytest.approx(6 * 0.01)
    assert plan.estimated_seconds == 11.0  # the shards run side by side


def test_max_parallel_makes_shards_run_in_waves() -> None:
    doc = manifest(sleep("s", 10, strategy={"matrix": {"n": list(range(5))}, "max_parallel": 2}))

    plan = plan_build(doc)

    assert plan.steps[0].max_parallel == 2
    assert plan.estimated_seconds == 30.0  # ceil(5 / 2) = 3 waves
    assert plan.quota["small"].max_parallel == 2


def test_quota_counts_steps_shards_and_the_widest_stage_per_class() -> None:
    doc = manifest(
        sleep("a", 1, strategy={"matrix": {"n": [1, 2, 3, 4]}}),
        sleep("b", 1),
        sleep("c", 1, resource_class="medium"),
        sleep("d", 1, ["a", "b"], strategy={"matrix": {"n": [1, 2, 3, 4, 5, 6]}, "max_parallel": 3}),
        sleep("e", 1, ["a"], resource_class="medium"),
    )

    quota = {rc: vars(q) for rc, q in plan_build(doc).quota.items()}

    assert quota == {
        "small": {"resource_class": "small", "steps": 3, "shards": 11, "max_parallel": 5},  # stage 0: 4 + 1
        "medium": {"resource_class": "medium", "steps": 2, "shards": 2, "max_parallel": 1},
    }


def test_side_effects_and_data_classes_are_summed_up() -> None:
    class Sensitive(TaskPackage):
        namespace = "acme"
        name = "scan"
        version = "1"
        data_classes = ("pii", "health")
        side_effects = True
        cost = {rc: Cost(1, 0.01) for rc in ("small", "medium", "large")}

    registry = PackageRegistry([*default_registry().packages(), Sensitive()])
    doc = manifest(
        {"id": "call", "uses": "pkg:mc/http@1", "with": {"url": "https://x.example.com"}},
        {"id": "scan", "uses": "pkg:acme/scan@1", "data_classes": ["financial", "pii"]},
        sleep("wait", 1, data_classes=["internal"]),
    )

    plan = plan_build(doc, registry=registry)

    assert plan.side_effects == ["call", "scan"]
    assert plan.data_classes == ["financial", "health", "internal", "pii"]
    assert plan.steps[1].data_classes == ["financial", "health", "pii"]
    assert plan.policy_decisions == []


def test_the_plan_is_plain_json() -> None:
    plan = plan_build(diamond())

    data = json.loads(json.dumps(plan.as_dict()))

    assert data["critical_path"] == ["fetch", "wait", "report"]
    assert data["quota"]["small"] == {"resource_class": "small", "steps": 4, "shards": 4, "max_parallel": 2}
    assert set(data["steps"][0]) == {
        "id",
        "uses",
        "queue",
        "resource_class",
        "needs",
        "stage",
        "shards",
        "retries",
        "timeout_seconds",
        "side_effects",
        "data_classes",
        "estimated_seconds",
        "estimated_usd",
        "compensate",
        "max_parallel",
    }


def test_an_unknown_package_cannot_be_planned() -> None:
    with pytest.raises(UnknownPackage):
        plan_build(manifest({"id": "a", "uses": "pkg:acme/nope@1"}))


def test_five_thousand_tasks_plan_quickly() -> None:
    chain = [sleep(f"c{i}", 1, [f"c{i - 1}"] if i else []) for i in range(2500)]
    wide = [sleep(f"w{i}", 1, ["c0"]) for i in range(2500)]
    doc = manifest(*chain, *wide)

    started = time.perf_counter()
    plan = plan_build(doc)
    elapsed = time.perf_counter() - started

    assert len(plan.steps) == 5000
    assert len(plan.stages) == 2500
    assert len(plan.critical_path) == 2500
    assert elapsed < 1.0  # a sanity bound, not a benchmark


# --- graph helpers --------------------------------------------------------------------


def test_topological_order_is_by_stage_then_manifest_order() -> None:
    doc = manifest(sleep("d", 1, ["b"]), sleep("b", 1, ["a"]), sleep("c", 1), sleep("a", 1))

    assert topological_order(doc) == ["c", "a", "b", "d"]


def test_transitive_needs() -> None:
    assert transitive_needs(diamond()) == {
        "fetch": frozenset(),
        "shout": frozenset({"fetch"}),
        "wait": frozenset({"fetch"}),
        "report": frozenset({"fetch", "shout", "wait"}),
    }


def test_transitive_needs_of_a_long_chain() -> None:
    doc = manifest(*(sleep(f"t{i}", 1, [f"t{i - 1}"] if i else []) for i in range(300)))

    needs = transitive_needs(doc)

    assert needs["t299"] == frozenset(f"t{i}" for i in range(299))


def test_graph_helpers_survive_invalid_manifests() -> None:
    doc = manifest(sleep("a", 1, ["b", "zz", "a"]), sleep("b", 1, ["a"]), sleep("c", 1), "junk", {"id": 5})

    assert topological_order(doc) == ["c"]  # a and b are in a cycle
    assert transitive_needs(doc)["a"] == frozenset({"a", "b"})
    assert transitive_needs(doc)["c"] == frozenset()


def test_matrix_shards_are_the_product_in_key_then_value_order() -> None:
    task = {"strategy": {"matrix": {"part": [0, 1], "region": ["eu", "us"]}, "max_parallel": 1}}

    assert matrix_shards(task) == [
        {"part": 0, "region": "eu"},
        {"part": 0, "region": "us"},
        {"part": 1, "region": "eu"},
        {"part": 1, "region": "us"},
    ]
    assert matrix_shards({"id": "plain"}) == [{}]
