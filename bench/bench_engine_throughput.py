"""Steps per second of MC on two DAG shapes, against raw Celery canvases. Run: python -m bench.bench_engine_throughput

(a) fan-out: MC runs one root echo, 999 echo steps needing it, one join needing all 999
    (1,001 steps); steps/s = 1001 / (execution.finished_at - time.time() before
    execution_create). Raw Celery: a chord of 1,000 ``noop`` tasks whose callback
    records its start time (1,001 tasks); tasks/s = 1001 / (callback start - submit).
(b) layered: MC runs 10 layers x 50 echo steps; step i of layer k needs steps i and
    (i+1) % 50 of layer k-1 (500 steps). Raw Celery: a chain of 10 chords, each a group
    of 50 ``noop`` tasks with a ``noop`` callback, then a ``mark_start``; the figure counts
    the 500 layer tasks (the same work as MC's 500 steps), the 10 chord callbacks are overhead.

Every figure is the median of RUNS runs (MC and raw Celery alternate), after one untimed
warm-up of each. The time from the execution's ``created_at`` is saved too.
Targets: fan-out >= 40% of the raw chord; layered >= 100% of the raw chain of chords.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .engine_setup import EngineBench, describe, echo, epoch, manifest, median_run, verdict
from .harness import environment, print_rows, write_json

RUNS = 3
FANOUT_WIDTH = 999
LAYERS = 10
LAYER_WIDTH = 50
TARGET_FANOUT = 0.40
TARGET_LAYERED = 1.00


def fanout_manifest(width: int = FANOUT_WIDTH) -> dict[str, Any]:
    middle = [f"s{i:03d}" for i in range(width)]
    return manifest(
        f"bench-fanout-{width}",
        [echo("root"), *(echo(step, ["root"]) for step in middle), echo("join", middle)],
    )


def layered_manifest(layers: int = LAYERS, width: int = LAYER_WIDTH) -> dict[str, Any]:
    tasks = []
    for layer in range(layers):
        for i in range(width):
            needs = [] if layer == 0 else [f"l{layer - 1}-{i:02d}", f"l{layer - 1}-{(i + 1) % width:02d}"]
            tasks.append(echo(f"l{layer}-{i:02d}", needs))
    return manifest(f"bench-layered-{layers}x{width}", tasks)


# --- MC -------------------------------------------------------------------------------------


def mc_run(bench: EngineBench, workflow: Any, counted: int) -> dict[str, Any]:
    """Run the workflow once; steps/s over ``counted`` steps, plus where the time went."""
    from django.db.models import Max, Min

    from executions.models import StepRun

    bench.purge()
    cpu = bench.mc_worker.cpu_seconds()
    execution, called = bench.execution_start(workflow)
    returned = time.time()
    execution = bench.execution_wait(execution.pk, timeout=170)
    finished = epoch(execution.finished_at)
    cpu = bench.mc_worker.cpu_seconds() - cpu
    steps = StepRun.objects.filter(execution=execution)
    span = steps.aggregate(first_start=Min("started_at"), last_start=Max("started_at"), last_end=Max("finished_at"))
    elapsed = finished - called
    return {
        "execution_id": str(execution.pk),
        "elapsed_s": elapsed,
        "per_s": counted / elapsed,
        "per_s_from_created_at": counted / (finished - epoch(execution.created_at)),
        "execution_create_s": returned - called,
        "worker_cpu_ms_per_step": cpu * 1000 / counted,
        "first_step_started_s": epoch(span["first_start"]) - called,
        "last_step_started_s": epoch(span["last_start"]) - called,
        "steps": steps.count(),
    }


def mc_fanout_phases(execution_id: Any) -> dict[str, float]:
    """Fan-out only: how long the root's completion took to release its 999 dependents."""
    from django.db.models import Min

    from executions.models import StepRun

    steps = StepRun.objects.filter(execution_id=execution_id)
    root = steps.get(step_id="root")
    middle = steps.exclude(step_id__in=["root", "join"]).aggregate(first=Min("started_at"))
    return {"root_finished_to_first_dependent_started_s": epoch(middle["first"]) - epoch(root.finished_at)}


# --- raw Celery -----------------------------------------------------------------------------


def raw_chord(bench: EngineBench, width: int = FANOUT_WIDTH + 1) -> dict[str, Any]:
    """A chord of ``width`` noops whose callback marks its start; tasks/s over width + 1 tasks."""
    from celery import chord

    from .baseline_celery import mark_start, mark_wait, noop, purge

    purge()
    key = "bench:chord"
    header = [noop.si(i) for i in range(width)]
    cpu = bench.baseline_worker.cpu_seconds()
    submitted = time.time()
    chord(header)(mark_start.si(key, submitted))
    _, started = mark_wait(key, timeout=170)
    elapsed = started - submitted
    time.sleep(0.2)  # let the worker finish acknowledging before reading its CPU time
    cpu = bench.baseline_worker.cpu_seconds() - cpu
    return {
        "elapsed_s": elapsed,
        "per_s": (width + 1) / elapsed,
        "tasks": width + 1,
        "worker_cpu_ms_per_task": cpu * 1000 / (width + 1),
    }


def raw_chain_of_chords(bench: EngineBench, layers: int = LAYERS, width: int = LAYER_WIDTH) -> dict[str, Any]:
    """A chain of ``layers`` chords (``width`` noops, a noop callback), then a mark; per_s over layer tasks."""
    from celery import chain, chord

    from .baseline_celery import mark_start, mark_wait, noop, purge

    purge()
    key = "bench:chain"
    layers_ = [chord([noop.si(i) for i in range(width)], noop.si(layer)) for layer in range(layers)]
    cpu = bench.baseline_worker.cpu_seconds()
    submitted = time.time()
    chain(*layers_, mark_start.si(key, submitted)).apply_async()
    _, started = mark_wait(key, timeout=170)
    elapsed = started - submitted
    time.sleep(0.2)  # let the worker finish acknowledging before reading its CPU time
    cpu = bench.baseline_worker.cpu_seconds() - cpu
    return {
        "elapsed_s": elapsed,
        "per_s": layers * width / elapsed,
        "per_s_all_tasks": (layers * (width + 1) + 1) / elapsed,
        "tasks": layers * (width + 1) + 1,
        "worker_cpu_ms_per_task": cpu * 1000 / (layers * (width + 1) + 1),
    }


# --- the bench ------------------------------------------------------------------------------


def shape_runs(name: str, mc: Callable[[], dict[str, Any]], raw: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Warm up, then RUNS alternating runs of MC and raw Celery; the medians and their ratio."""
    print(f"[engine_throughput] {name}: 1 warm-up + {RUNS} runs each ...", flush=True)
    mc()
    raw()
    mc_runs, raw_runs = [], []
    for index in range(RUNS):
        mc_runs.append(mc())
        raw_runs.append(raw())
        print(
            f"  run {index + 1}: MC {mc_runs[-1]['per_s']:.1f}/s ({mc_runs[-1]['elapsed_s']:.2f} s), "
            f"raw {raw_runs[-1]['per_s']:.1f}/s ({raw_runs[-1]['elapsed_s']:.2f} s)",
            flush=True,
        )
    mc_median = median_run(mc_runs, "per_s")
    raw_median = median_run(raw_runs, "per_s")
    return {
        "mc_runs": mc_runs,
        "raw_runs": raw_runs,
        "mc_median": mc_median,
        "raw_median": raw_median,
        "ratio": mc_median["per_s"] / raw_median["per_s"],
    }


def main() -> None:
    """Measure both shapes, print, compare with the targets, save bench/results/engine_throughput.json."""
    with EngineBench("engine_throughput") as bench:
        fanout = bench.workflow_published(fanout_manifest())
        layered = bench.workflow_published(layered_manifest())
        last_fanout: dict[str, Any] = {}

        def mc_fanout() -> dict[str, Any]:
            run = mc_run(bench, fanout, FANOUT_WIDTH + 2)
            run.update(mc_fanout_phases(run["execution_id"]))
            last_fanout.update(run)
            return run

        def mc_layered() -> dict[str, Any]:
            return mc_run(bench, layered, LAYERS * LAYER_WIDTH)

        results = {
            "fanout": shape_runs("fan-out 1 -> 999 -> 1", mc_fanout, lambda: raw_chord(bench)),
            "layered": shape_runs(f"layered {LAYERS} x {LAYER_WIDTH}", mc_layered, lambda: raw_chain_of_chords(bench)),
        }
        errors = bench.worker_errors()
        conditions = bench.conditions()

    fan, lay = results["fanout"], results["layered"]
    print(f"\nthroughput, median of {RUNS} runs (prefork -c 2, acks_late, prefetch 1)\n")
    print_rows(
        ("shape", "MC per s", "MC s", "raw Celery", "raw per s", "raw s", "MC / raw", "target"),
        [
            (
                "fan-out 1+999+1 steps",
                f"{fan['mc_median']['per_s']:.1f}",
                f"{fan['mc_median']['elapsed_s']:.2f}",
                "chord 1000+1",
                f"{fan['raw_median']['per_s']:.1f}",
                f"{fan['raw_median']['elapsed_s']:.2f}",
                f"{fan['ratio']:.0%}",
                f">= {TARGET_FANOUT:.0%}",
            ),
            (
                f"layered {LAYERS}x{LAYER_WIDTH} (needs 2)",
                f"{lay['mc_median']['per_s']:.1f}",
                f"{lay['mc_median']['elapsed_s']:.2f}",
                f"chain of {LAYERS} chords",
                f"{lay['raw_median']['per_s']:.1f}",
                f"{lay['raw_median']['elapsed_s']:.2f}",
                f"{lay['ratio']:.0%}",
                f">= {TARGET_LAYERED:.0%}",
            ),
        ],
    )
    meets_fanout = fan["ratio"] >= TARGET_FANOUT
    meets_layered = lay["ratio"] >= TARGET_LAYERED
    print(
        f"\nfan-out: MC {fan['ratio']:.0%} of the raw chord: target >= {TARGET_FANOUT:.0%} -> {verdict(meets_fanout)}"
    )
    print(
        f"layered: MC {lay['ratio']:.0%} of the raw chain of chords: "
        f"target >= {TARGET_LAYERED:.0%} -> {verdict(meets_layered)}"
    )
    print(
        "worker CPU (main + pool processes) per step / task, median runs: "
        f"fan-out MC {fan['mc_median']['worker_cpu_ms_per_step']:.1f} ms vs raw "
        f"{fan['raw_median']['worker_cpu_ms_per_task']:.1f} ms; layered MC "
        f"{lay['mc_median']['worker_cpu_ms_per_step']:.1f} ms vs raw "
        f"{lay['raw_median']['worker_cpu_ms_per_task']:.1f} ms"
    )
    release_ms = last_fanout["root_finished_to_first_dependent_started_s"] * 1000
    print(
        f"fan-out detail (last MC run): execution_create {last_fanout['execution_create_s'] * 1000:.0f} ms, "
        f"root finished -> first dependent started {release_ms:.0f} ms"
    )
    if errors:
        print(f"\nWARNING: worker logs have errors: {errors}")
    print(describe(conditions))
    path = write_json(
        "engine_throughput",
        {
            "runs": RUNS,
            "shapes": {
                "fanout": {"mc_steps": FANOUT_WIDTH + 2, "raw_tasks": FANOUT_WIDTH + 2, **fan},
                "layered": {"layers": LAYERS, "width": LAYER_WIDTH, "needs_per_step": 2, **lay},
            },
            "targets": {"fanout_ratio": TARGET_FANOUT, "layered_ratio": TARGET_LAYERED},
            "met": {"fanout_ratio": meets_fanout, "layered_ratio": meets_layered},
            "worker_errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
