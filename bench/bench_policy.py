"""How long do the four policy packs take to decide on a 1,000-task workflow? Run: python -m bench.bench_policy

Builds a valid 1,000-task manifest (a layered DAG with a mix of packages, resource
classes, pii tasks, side-effect steps, task regions and a few matrix tasks), plans it
with ``plan_build`` and turns it into the ``mc.policy/v1`` input document with
``policy_input`` (stage ``execute``, where all four packs decide). Then, in one process,
taking turns sample by sample, it times:

- **MC**: ``RegoEngine.evaluate_all(document)`` over the four packs loaded from
  policy/bundles, as ``policies_evaluate`` runs them: input digest, exact input
  conversion, one worker thread, one ``data.mc.<pack>`` query per pack, decisions.
- **bare regopy**: one ``regopy.Interpreter`` holding the same modules and data and one
  bundle with the four entrypoints, built once; per sample ``set_input(Input(document))``
  and one ``query_bundle_entrypoint`` of ``mc/<pack>`` per pack, its Output decoded.
- For information: **bare regopy, exact input**, the same with ``set_input_term`` of the
  document's JSON (``regopy.Input`` keeps six decimals of a float; MC's conversion falls
  back to that slower path whenever a float would lose digits, and a plan's
  ``estimated_usd`` and ``estimated_seconds`` are sums that nearly always do); and
  **MC on the same document with those two figures rounded to six decimals**.

Each side runs on a thread of its own (MC's engines have their worker threads; bare
regopy gets a one-thread executor, timed inside it): rego-cpp's speed depends a lot on
the state of the malloc arena it allocates from, and a thread has its own.
Per-pack figures: MC's are the decisions' ``duration_ms`` (measured on the worker; the
first pack's includes converting the input), bare regopy's are timed around each call.

Targets: MC p99 < 5 ms, and MC within 1.5x of bare regopy at p50.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from regopy import Input, Interpreter, LogLevel

from .harness import Result, environment, print_rows, print_table, summarize, write_json

TASKS = 1000
LAYER_WIDTH = 25  # tasks per layer of the DAG
MAX_NEEDS = 3
SAMPLES = 15  # of each side: a sample takes 2 to 4 s, so p99 is the slowest sample
WARMUP = 4  # rounds: rego-cpp gets slower over a thread's first few big inputs, then settles
TARGET_P99_MS = 5.0
TARGET_RATIO = 1.5
REGION = "eu-west-1"
TENANT_LIMITS = {
    "max_concurrent_steps": {"small": 40, "medium": 20, "large": 4},
    "max_large_steps_per_run": 100,
    "pii_regions": ["eu-west-1", "eu-central-1"],
}
USAGE = {"running_steps": {"small": 3, "medium": 1, "large": 0}, "spend_today_usd": 12.5}
SIDES = {
    "mc": "MC RegoEngine.evaluate_all",
    "bare": "bare regopy (Input + 4 queries)",
    "bare_exact": "bare regopy, exact input (set_input_term) [info]",
    "mc_rounded": "MC, plan figures rounded to 6 decimals [info]",
}


def _task(index: int, rng: random.Random) -> dict[str, Any]:
    """One task of layer index // LAYER_WIDTH, needing up to MAX_NEEDS tasks of the layer above."""
    layer = index // LAYER_WIDTH
    task: dict[str, Any] = {"id": f"step-{index:04d}", "name": f"Step {index}"}
    kind = index % 20
    if kind == 7:  # 10% of the tasks act outside MC
        task["uses"], task["with"] = "pkg:mc/http@1", {"url": f"https://api.example.com/items/{index}"}
    elif kind == 17:
        task["uses"], task["with"] = "pkg:mc/storage-put@1", {"content": {"step": index, "layer": layer}}
    elif kind in (3, 11, 15):
        task["uses"] = "pkg:mc/python@1"
        task["with"] = {"callable": "executions.packages.samples:add", "args": {"a": index, "b": layer}}
    elif kind == 19:
        task["uses"], task["with"] = "pkg:mc/sleep@1", {"seconds": 1}
    else:
        task["uses"], task["with"] = "pkg:mc/echo@1", {"message": f"payload for step {index}"}
    task["resource_class"] = "large" if index % 50 == 25 else "medium" if index % 4 == 1 else "small"
    if layer:
        above = range((layer - 1) * LAYER_WIDTH, layer * LAYER_WIDTH)
        task["needs"] = [f"step-{i:04d}" for i in rng.sample(above, rng.randint(1, MAX_NEEDS))]
    if index % 10 == 0:
        task["data_classes"] = ["pii"]
    elif index % 15 == 0:
        task["data_classes"] = ["financial"]
    if index % 8 == 5:
        task["regions"] = ["eu-west-1", "eu-central-1"]
    if index % 100 == 3:  # a python task fanned out over a matrix
        task["strategy"] = {"matrix": {"n": [1, 2, 3, 4]}, "max_parallel": 2}
        task["with"]["args"] = {"a": "${{ matrix.n }}", "b": 10}
    return task


def build_manifest(tasks: int = TASKS, seed: int = 1) -> dict[str, Any]:
    """A valid manifest whose plan every pack has something to read in."""
    rng = random.Random(seed)
    return {
        "name": "bench-policy",
        "version": "1.0.0",
        "description": "Benchmark manifest for the policy packs",
        "region": REGION,
        "labels": {"team": "platform", "purpose": "bench"},
        "pii_export_approved": True,
        "inputs": {"batch": {"type": "integer", "default": 100}},
        "tasks": [_task(i, rng) for i in range(tasks)],
    }


def build_document(manifest: dict[str, Any]) -> dict[str, Any]:
    """The mc.policy/v1 input document of the manifest's plan at stage execute (no database)."""
    from executions.packages.registry import package_problems
    from executions.planner import plan_build
    from policy.choices import DecisionStage
    from policy.services import policy_input
    from workflows.manifest import validate_manifest

    problems = validate_manifest(manifest) + package_problems(manifest)
    if problems:  # timing the error path by accident would flatter nobody
        raise SystemExit(f"the bench manifest is invalid: {problems[:3]}")
    tenant: Any = SimpleNamespace(slug="bench")  # policy_input reads only .slug
    return policy_input(
        stage=DecisionStage.EXECUTE,
        tenant=tenant,
        actor=SimpleNamespace(username="bench"),
        manifest=manifest,
        plan=plan_build(manifest).as_dict(),
        mode="run",
        region=REGION,
        limits=TENANT_LIMITS,
        usage=USAGE,
    )


def with_rounded_plan_figures(document: dict[str, Any]) -> dict[str, Any]:
    """The document with plan.estimated_usd and estimated_seconds rounded to six decimals."""
    plan = document["plan"]
    rounded = {key: round(plan[key], 6) for key in ("estimated_usd", "estimated_seconds")}
    return {**document, "plan": {**plan, **rounded}}


@dataclass
class Sample:
    """One timed evaluation of the four packs: total, parts, and what each pack found."""

    total_ms: float
    parts_ms: dict[str, float]
    found: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]  # pack -> (deny, warn)
    errors: list[str] = field(default_factory=list)


class BareRegopy:
    """The least one can do with regopy: one interpreter, one bundle built once, one query per pack."""

    def __init__(self, bundles: Sequence[Any]) -> None:
        self.packs = [bundle.name for bundle in bundles]
        self.interp = Interpreter()
        self.interp.log_level = LogLevel.NONE
        data: dict[str, Any] = {}
        for bundle in bundles:
            for path, source in bundle.modules.items():
                self.interp.add_module(path, source)
            _merge(data, bundle.data)
        self.interp.add_data_json(json.dumps(data))  # one document: rego-cpp refuses a second "mc"
        entrypoints = [f"mc/{pack}/{rule}" for pack in self.packs for rule in ("deny", "warn")]
        self.bundle = self.interp.build(None, entrypoints)
        if not self.bundle.ok():
            raise SystemExit("regopy could not build the bundles")

    def sample(self, document: dict[str, Any], *, exact: bool = False) -> Sample:
        """Set the input, query every pack; time the whole and each part."""
        parts: dict[str, float] = {}
        found = {}
        start = time.perf_counter_ns()
        if exact:
            self.interp.set_input_term(json.dumps(document))
        else:
            self.interp.set_input(Input(document))
        parts["set_input"] = _ms_since(start)
        for pack in self.packs:
            pack_start = time.perf_counter_ns()
            result = {}
            for rule in ("deny", "warn"):
                output = self.interp.query_bundle_entrypoint(self.bundle, f"mc/{pack}/{rule}")
                if not output.ok() or len(output) != 1:
                    raise SystemExit(f"bare regopy failed on {pack}.{rule}: {output}")
                result[rule] = output[0].expressions[0]
            parts[pack] = _ms_since(pack_start)
            found[pack] = (_codes(result["deny"]), _codes(result["warn"]))
        return Sample(_ms_since(start), parts, found)


def mc_sample(engine: Any, document: dict[str, Any]) -> Sample:
    """One ``evaluate_all``; the parts are the decisions' own durations."""
    start = time.perf_counter_ns()
    decisions = engine.evaluate_all(document)
    total = _ms_since(start)
    return Sample(
        total,
        {d.pack: d.duration_ms for d in decisions},
        {d.pack: (_codes(d.deny), _codes(d.warn)) for d in decisions},
        [f"{d.pack}: {d.error}" for d in decisions if d.error],
    )


def main() -> None:
    """Time, print, compare with the targets, and save bench/results/policy.json."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mc_project.settings")
    import django

    django.setup()  # policy.services imports models; nothing here touches the database
    from policy.choices import PACKS
    from policy.engine import RegoEngine, load_bundle
    from policy.services import BUNDLES_DIR

    loadavg_start = os.getloadavg()
    document = build_document(build_manifest())
    rounded = with_rounded_plan_figures(document)
    bundles = [load_bundle(BUNDLES_DIR / pack, name=pack) for pack in PACKS]
    bare, bare_exact = BareRegopy(bundles), BareRegopy(bundles)
    # Every side runs on a thread of its own, as MC's engine does: glibc gives each thread its
    # own malloc arena, and a side sharing one with another side's big inputs runs slower.
    with (
        RegoEngine(bundles) as engine,  # as policy.services builds it (default timeout)
        RegoEngine(bundles) as engine_rounded,
        ThreadPoolExecutor(1) as bare_thread,
        ThreadPoolExecutor(1) as bare_exact_thread,
    ):
        sides: dict[str, Callable[[], Sample]] = {
            "mc": lambda: mc_sample(engine, document),
            "bare": lambda: bare_thread.submit(bare.sample, document).result(),
            "bare_exact": lambda: bare_exact_thread.submit(bare_exact.sample, document, exact=True).result(),
            "mc_rounded": lambda: mc_sample(engine_rounded, rounded),
        }
        first = {name: take() for name, take in sides.items()}
        _check_agreement(first)
        for _ in range(WARMUP - 1):
            for take in sides.values():
                take()
        samples: dict[str, list[Sample]] = {name: [] for name in sides}
        names = list(sides)
        for index in range(SAMPLES):
            shift = index % len(names)  # each side goes first in turn
            for name in names[shift:] + names[:shift]:
                samples[name].append(sides[name]())

    rows = _rows(samples, PACKS)
    totals = {name: summarize(SIDES[name], [s.total_ms for s in samples[name]]) for name in sides}
    mc, baseline = totals["mc"], totals["bare"]
    errors = [error for s in samples["mc"] + samples["mc_rounded"] for error in s.errors]  # timeouts, most likely
    steps = len(document["plan"]["steps"])
    size_kib = len(json.dumps(document)) // 1024
    print(f"\n{steps}-step plan, input document {size_kib} KiB, {SAMPLES} samples of each side, taking turns\n")
    print_table(rows, p99=True)
    print()
    decisions = first["mc"].found
    print_rows(
        ("pack", "MC result", "deny", "warn"),
        [
            (pack, _result(*decisions[pack]), str(len(decisions[pack][0])), str(len(decisions[pack][1])))
            for pack in PACKS
        ],
    )

    ratios = {
        "mc_to_bare_p50": mc.p50 / baseline.p50,
        "mc_to_bare_p99": mc.p99 / baseline.p99,
        "mc_to_bare_exact_p50": mc.p50 / totals["bare_exact"].p50,
        "mc_rounded_to_bare_p50": totals["mc_rounded"].p50 / baseline.p50,
    }
    meets_time = mc.p99 < TARGET_P99_MS and not any(s.errors for s in samples["mc"])
    meets_ratio = ratios["mc_to_bare_p50"] <= TARGET_RATIO
    if errors:
        print(f"\n{len(errors)} policy_error decisions while timing, e.g. {errors[0]}")
    print(f"\nMC p99 {mc.p99:.1f} ms: target < {TARGET_P99_MS:.0f} ms -> {_verdict(meets_time)}")
    print(
        f"MC / bare regopy: {ratios['mc_to_bare_p50']:.2f}x at p50, {ratios['mc_to_bare_p99']:.2f}x at p99: "
        f"target <= {TARGET_RATIO}x at p50 -> {_verdict(meets_ratio)}"
    )
    print(
        f"for information: MC / bare regopy with exact input {ratios['mc_to_bare_exact_p50']:.2f}x at p50; "
        f"MC on rounded plan figures / bare regopy {ratios['mc_rounded_to_bare_p50']:.2f}x at p50"
    )
    path = write_json(
        "policy",
        {
            "tasks": TASKS,
            "steps": steps,
            "input_kib": size_kib,
            "samples": SAMPLES,
            "results": [r.as_dict() for r in rows],
            "decisions": {pack: {"deny": deny, "warn": warn} for pack, (deny, warn) in decisions.items()},
            "policy_errors": errors,
            "ratios": ratios,
            "targets": {"mc_p99_ms": TARGET_P99_MS, "ratio_p50": TARGET_RATIO},
            "met": {"mc_p99_ms": meets_time, "ratio_p50": meets_ratio},
            "loadavg_at_start": loadavg_start,
            "loadavg_at_end": os.getloadavg(),
            "environment": environment(),
        },
    )
    print(f"\nsaved {path}")


def _rows(samples: dict[str, list[Sample]], packs: Sequence[str]) -> list[Result]:
    """The total of each side; under MC and bare regopy, their parts."""
    rows = []
    for name, label in SIDES.items():
        rows.append(summarize(label, [s.total_ms for s in samples[name]]))
        if name == "mc":
            for index, pack in enumerate(packs):
                note = " (+ input conversion)" if index == 0 else ""
                rows.append(summarize(f"  {pack}{note}", [s.parts_ms[pack] for s in samples[name]]))
        elif name == "bare":
            for part in ("set_input", *packs):
                rows.append(summarize(f"  {part}", [s.parts_ms[part] for s in samples[name]]))
    return rows


def _check_agreement(first: dict[str, Sample]) -> None:
    """Every side must find the same denials and warnings, and MC no policy_error."""
    for name, sample in first.items():
        if sample.errors:
            raise SystemExit(f"{SIDES[name]} answered policy_error: {sample.errors}")
        if sample.found != first["mc"].found:
            raise SystemExit(f"{SIDES[name]} and MC disagree: {sample.found} != {first['mc'].found}")


def _codes(items: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((item["code"], item.get("path", "")) for item in items)


def _result(deny: list[Any], warn: list[Any]) -> str:
    return "deny" if deny else "warn" if warn else "allow"


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1_000_000


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
