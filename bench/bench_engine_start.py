"""Publish-to-start latency of MC against raw Celery submit-to-start. Run: python -m bench.bench_engine_start

MC, through the services (no HTTP): a fresh draft of a 3-step chain workflow is saved
(untimed), then the clock starts (``time.time()``), ``workflow_publish`` freezes the
draft, ``execution_create`` plans the run, writes its rows and queues the root step, and
the clock stops at the root step's ``StepRun.started_at``, written by the worker when it
claims the step (same machine, same clock). The bench waits for each execution to finish
before the next sample, so every sample starts on idle workers.

Raw Celery: ``mark_start.apply_async(args=[key, time.time()])``; the task pushes its
own start time onto a Redis list; latency = start - submit.

Samples alternate MC / raw Celery, WARMUP of each untimed, then SAMPLES of each.
Targets: MC publish-to-start p95 < 50 ms, and within 10x of raw Celery at p95.
"""

from __future__ import annotations

import time
from typing import Any

from .engine_setup import EngineBench, describe, echo, epoch, manifest, verdict
from .harness import environment, print_rows, print_table, summarize, write_json

SAMPLES = 200
WARMUP = 20
TARGET_P95_MS = 50.0
TARGET_RATIO = 10.0
MARK_KEY = "bench:start"


def chain_manifest(revision: int) -> dict[str, Any]:
    """A 3-step chain; ``revision`` changes a message so each draft differs from the last version."""
    return manifest(
        "bench-start",
        [
            {**echo("extract"), "with": {"message": f"revision {revision}"}},
            echo("transform", ["extract"]),
            echo("load", ["transform"]),
        ],
    )


def mc_sample(bench: EngineBench, workflow: Any, revision: int) -> dict[str, float]:
    """One publish-to-start sample, in ms: total and its parts."""
    from executions.models import StepRun
    from workflows.services import draft_save, workflow_publish

    draft_save(workflow=workflow, actor=bench.user, manifest=chain_manifest(revision))
    t0 = time.time()
    workflow_publish(workflow=workflow, actor=bench.user)
    published = time.time()
    execution, _ = bench.execution_start(workflow)
    created = time.time()
    bench.execution_wait(execution.pk, interval=0.01)
    started = epoch(StepRun.objects.get(execution=execution, step_id="extract").started_at)
    return {
        "publish_to_start": (started - t0) * 1000,
        "publish": (published - t0) * 1000,
        "execution_create": (created - published) * 1000,
        "create_return_to_start": (started - created) * 1000,
        "create_call_to_start": (started - published) * 1000,
    }


def baseline_sample() -> float:
    """One raw Celery submit-to-start sample, in ms."""
    from .baseline_celery import mark_start, mark_wait

    mark_start.apply_async(args=[MARK_KEY, time.time()])
    submitted, started = mark_wait(MARK_KEY)
    return (started - submitted) * 1000


def main() -> None:
    """Measure, print, compare with the targets, and save bench/results/engine_start.json."""
    with EngineBench("engine_start") as bench:
        workflow = bench.workflow_published(chain_manifest(0))
        bench.purge()
        mc: dict[str, list[float]] = {}
        raw: list[float] = []
        print(f"[engine_start] {WARMUP} warm-up + {SAMPLES} samples each, alternating MC / raw Celery ...", flush=True)
        for index in range(WARMUP + SAMPLES):
            sample = mc_sample(bench, workflow, index + 1)
            latency = baseline_sample()
            if index < WARMUP:
                continue
            for key, value in sample.items():
                mc.setdefault(key, []).append(value)
            raw.append(latency)
        errors = bench.worker_errors()
        conditions = bench.conditions()

    total = summarize("MC publish -> first step started", mc["publish_to_start"])
    rows = [
        total,
        summarize("  of which workflow_publish", mc["publish"]),
        summarize("  of which execution_create", mc["execution_create"]),
        summarize("  of which create returned -> started", mc["create_return_to_start"]),
        summarize("MC execution_create call -> started", mc["create_call_to_start"]),
        summarize("raw Celery apply_async -> started", raw),
    ]
    baseline = rows[-1]
    print(f"\npublish-to-start, {SAMPLES} samples after {WARMUP} warm-up (prefork -c 2, acks_late, prefetch 1)\n")
    print_table(rows, p99=True)
    ratios = {p: getattr(total, p) / getattr(baseline, p) for p in ("p50", "p95", "p99")}
    print()
    print_rows(
        ("ratio MC / raw Celery", "p50", "p95", "p99"),
        [("publish-to-start", *(f"{r:.1f}x" for r in ratios.values()))],
    )
    meets_p95 = total.p95 < TARGET_P95_MS
    meets_ratio = ratios["p95"] <= TARGET_RATIO
    print(f"\nMC p95 {total.p95:.1f} ms: target < {TARGET_P95_MS:.0f} ms -> {verdict(meets_p95)}")
    print(f"ratio to raw Celery at p95 {ratios['p95']:.1f}x: target <= {TARGET_RATIO:.0f}x -> {verdict(meets_ratio)}")
    if errors:
        print(f"\nWARNING: worker logs have errors: {errors}")
    print(describe(conditions))
    path = write_json(
        "engine_start",
        {
            "samples": SAMPLES,
            "warmup": WARMUP,
            "method": "services (workflow_publish + execution_create), no HTTP",
            "results": [r.as_dict() for r in rows],
            "ratios": ratios,
            "targets": {"mc_p95_ms": TARGET_P95_MS, "ratio_p95": TARGET_RATIO},
            "met": {"mc_p95_ms": meets_p95, "ratio_p95": meets_ratio},
            "worker_errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
