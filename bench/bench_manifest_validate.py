"""How long does validating a 1,000-task manifest take? Run: python -m bench.bench_manifest_validate

Times validate_manifest (schema + semantic + size checks) against a plain
jsonschema Draft202012Validator.validate of the same document, in one process,
and parse_manifest of the YAML form for information.

Targets: full validation p50 < 50 ms, and at most 3x plain jsonschema.
The invalid-manifest row is for information: a manifest the compiled fast
path does not accept is validated by jsonschema itself, at jsonschema's speed.
"""

from __future__ import annotations

import random
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from workflows.manifest import load_schema, parse_manifest, validate_manifest

from .harness import environment, print_table, run, write_json

TASKS = 1000
LAYER_WIDTH = 25  # tasks per layer of the DAG
MAX_NEEDS = 3
TARGET_FULL_MS = 50.0
TARGET_RATIO = 3.0
PACKAGES = ("pkg:mc/echo@1", "pkg:mc/sleep@1", "pkg:acme/transform@2.1.0", "pkg:acme/sql-extract@1.4")
RESOURCE_CLASSES = ("small", "medium", "large")


def _task(index: int, rng: random.Random) -> dict[str, Any]:
    """One task of layer index // LAYER_WIDTH, needing up to MAX_NEEDS tasks of the layer above."""
    layer = index // LAYER_WIDTH
    task: dict[str, Any] = {
        "id": f"step-{index:04d}",
        "name": f"Step {index}",
        "uses": rng.choice(PACKAGES),
        "with": {
            "message": f"payload for step {index}",
            "options": {"level": index % 5, "tags": ["nightly", f"layer-{layer}"], "ratio": 0.5},
        },
        "retries": index % 4,
        "timeout_seconds": 600 + index,
        "resource_class": RESOURCE_CLASSES[index % 3],
    }
    if layer:
        above = range((layer - 1) * LAYER_WIDTH, layer * LAYER_WIDTH)
        task["needs"] = [f"step-{i:04d}" for i in rng.sample(above, rng.randint(1, MAX_NEEDS))]
    if index % 10 == 0:
        task["data_classes"] = ["pii"]
    if index % 50 == 0:
        task["compensate"] = {"uses": "pkg:mc/echo@1", "with": {"message": f"undo {index}"}, "retries": 2}
    return task


def build_manifest(tasks: int = TASKS, seed: int = 1) -> dict[str, Any]:
    """A realistic manifest: a layered DAG with needs, with-blocks and resource classes."""
    rng = random.Random(seed)
    return {
        "name": "bench-layered-dag",
        "version": "1.0.0",
        "description": "Benchmark manifest",
        "region": "eu-west-1",
        "labels": {"team": "platform", "purpose": "bench"},
        "inputs": {
            "greeting": {"type": "string", "default": "hello"},
            "batch": {"type": "integer", "default": 100, "enum": [100, 500]},
        },
        "tasks": [_task(i, rng) for i in range(tasks)],
    }


def main() -> None:
    """Time, print, compare with the targets, and save bench/results/manifest_validate.json."""
    doc = build_manifest()
    problems = validate_manifest(doc)
    if problems:  # timing the error path by accident would flatter nobody
        raise SystemExit(f"the bench manifest is invalid: {problems[:3]}")
    plain = Draft202012Validator(load_schema())  # built once, outside the timing
    text = yaml.safe_dump(doc, sort_keys=False)

    broken = build_manifest()
    broken["tasks"][-1]["retries"] = 11  # one schema error: the fast path says no, jsonschema explains

    full = run("validate_manifest (full)", lambda: validate_manifest(doc), repeat=50, warmup=5)
    baseline = run("jsonschema Draft202012 validate", lambda: plain.validate(doc), repeat=20, warmup=3)
    invalid = run("validate_manifest (1 error)", lambda: validate_manifest(broken), repeat=20, warmup=2)
    parse = run(f"parse_manifest (YAML, {len(text) // 1024} KiB)", lambda: parse_manifest(text), repeat=20, warmup=2)
    rows = [full, baseline, invalid, parse]
    print(f"\n{TASKS}-task manifest\n")
    print_table(rows)

    ratio = full.p50 / baseline.p50
    meets_time = full.p50 < TARGET_FULL_MS
    meets_ratio = ratio <= TARGET_RATIO
    print(f"\nfull validation p50 {full.p50:.2f} ms: target < {TARGET_FULL_MS:.0f} ms -> {_verdict(meets_time)}")
    print(f"ratio to plain jsonschema {ratio:.2f}x: target <= {TARGET_RATIO:.0f}x -> {_verdict(meets_ratio)}")
    path = write_json(
        "manifest_validate",
        {
            "tasks": TASKS,
            "results": [r.as_dict() for r in rows],
            "ratio_p50": ratio,
            "targets": {"full_p50_ms": TARGET_FULL_MS, "ratio": TARGET_RATIO},
            "met": {"full_p50_ms": meets_time, "ratio": meets_ratio},
            "environment": environment(),
        },
    )
    print(f"\nsaved {path}")


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
