"""From a canary's first breaching run to routing changed, and what analysis costs. Run: python -m bench.bench_canary

Both parts run in one ``EngineBench`` (fresh ``mc_bench``, an MC worker on every queue, and
the raw-Celery baseline worker).

**(a) breach to rollback**, on a real worker. A workflow whose 1.0.0 echoes and whose 1.0.1
fails (``pkg:mc/fail@1``, no retries). Each sample starts a canary release of 1.0.1 at
weight 100 with ``min_sample=1``, so the first canary run is the breaching one, starts an
unpinned run (routed to the canary), and waits until the release is rolled back.
Latency = ``CanaryRelease.ended_at`` - ``Execution.finished_at``, both written by the worker
(same machine, same clock): the run's final transaction, ``canary.analyse`` sent on commit,
taken from ``mc.control`` by a pool process, the analysis queries, and the rollback's
transaction (event, rollback receipt row). Routing reads the release at every unpinned
run, uncached, so the commit of that transaction is the moment routing changed; the bench
checks it by starting one more unpinned run and asserting it got the stable version.
Beside each sample, taking turns: a raw Celery submit-to-start of one task
(``baseline.mark_start``): the one broker hop MC's path also takes.

**(b) analysis cost**, in this process: ``canary_analyse`` of a running release (verdict
hold: the stage is younger than its window) with N canary and N stable runs in the window,
for N = 100, 1,000 and 10,000 (rows inserted directly).

Target: breach to rollback < 5 s (the sprint plan's KR is < 2 minutes).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from .engine_setup import EngineBench, describe, echo, epoch, manifest, verdict
from .harness import environment, print_rows, print_table, summarize, write_json

SAMPLES = 60
WARMUP = 5
ANALYSIS_SIZES = (100, 1_000, 10_000)
ANALYSIS_REPEAT = 30
TARGET_S = 5.0
MARK_KEY = "bench:canary"


def versions(bench: EngineBench) -> tuple[Any, Any, Any]:
    """The workflow, its echoing 1.0.0 and its failing 1.0.1."""
    from workflows.services import draft_save, workflow_publish

    workflow = bench.workflow_published(manifest("bench-canary", [echo("greet")]))
    stable = workflow.versions.get(version="1.0.0")
    failing = manifest("bench-canary", [{"id": "greet", "uses": "pkg:mc/fail@1", "with": {"message": "broken"}}])
    draft_save(workflow=workflow, actor=bench.user, manifest=failing)
    canary = workflow_publish(workflow=workflow, actor=bench.user).version
    return workflow, stable, canary


def rollback_sample(bench: EngineBench, workflow: Any, stable: Any, canary: Any) -> dict[str, float]:
    """One breach, in ms: first breaching run's end -> release rolled back (routing changed)."""
    from canary.models import CanaryRelease
    from canary.services import canary_create
    from executions.models import Execution

    release = canary_create(
        workflow=workflow, stable_version=stable, canary_version=canary, actor=bench.user, weight=100, min_sample=1
    )
    execution, _ = bench.execution_start(workflow)
    deadline = time.monotonic() + 30
    while True:
        row = CanaryRelease.objects.only("state", "ended_at").get(pk=release.pk)
        if row.state == "rolled_back":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"release {release.pk} still {row.state} after 30 s\n{bench.mc_worker.log_tail()}")
        time.sleep(0.005)
    run = Execution.objects.only("status", "arm", "finished_at").get(pk=execution.pk)
    if (run.status, run.arm) != ("failed", "canary"):
        raise RuntimeError(f"the breaching run ended {run.status} on arm {run.arm!r}")
    after, _ = bench.execution_start(workflow)  # routing changed: the next unpinned run gets stable
    if after.workflow_version_id != stable.pk:
        raise RuntimeError("a run after the rollback did not get the stable version")
    bench.execution_wait(after.pk, interval=0.01)
    return {"breach_to_rollback": (epoch(row.ended_at) - epoch(run.finished_at)) * 1000}


def baseline_sample() -> float:
    """One raw Celery submit-to-start, in ms."""
    from .baseline_celery import mark_start, mark_wait

    mark_start.apply_async(args=[MARK_KEY, time.time()])
    submitted, started = mark_wait(MARK_KEY)
    return (started - submitted) * 1000


def analysis_samples(bench: EngineBench, workflow: Any, stable: Any, canary: Any) -> dict[int, list[float]]:
    """``canary_analyse`` (verdict hold) with N runs per arm in the window, in ms."""
    from django.utils import timezone

    from canary.models import CanaryRelease
    from canary.services import canary_analyse, canary_create
    from executions.models import Execution

    release = canary_create(
        workflow=workflow, stable_version=stable, canary_version=canary, actor=bench.user, weight=50, min_sample=1
    )
    begun = timezone.now() - timedelta(minutes=5)  # younger than its 10-minute window: a hold
    CanaryRelease.objects.filter(pk=release.pk).update(created_at=begun, stage_started_at=begun)
    samples: dict[int, list[float]] = {}
    inserted = 0
    for size in ANALYSIS_SIZES:
        now = timezone.now()
        rows = []
        for n in range(inserted, size):
            for arm, version in (("canary", canary), ("stable", stable)):
                end = now - timedelta(seconds=(n % 240) * 0.5)
                rows.append(
                    Execution(
                        tenant=bench.tenant,
                        workflow=workflow,
                        workflow_version=version,
                        status="failed" if n % 500 == 1 else "succeeded",  # 0.2%: within the 1% budget
                        inputs_digest="0" * 64,
                        request_digest="0" * 64,
                        canary_release=release,
                        arm=arm,
                        started_at=end - timedelta(milliseconds=50 + n % 100),
                        finished_at=end,
                    )
                )
        Execution.objects.bulk_create(rows, batch_size=2000)
        inserted = size
        timings = []
        for _ in range(ANALYSIS_REPEAT + 3):
            start = time.perf_counter_ns()
            analysis = canary_analyse(release_id=release.pk)
            timings.append((time.perf_counter_ns() - start) / 1e6)
            if analysis is None or analysis.decision.verdict != "hold":
                raise RuntimeError(f"expected a hold, got {analysis and analysis.decision}")
        samples[size] = timings[3:]
    return samples


def main() -> None:
    """Measure, print, compare with the target, and save bench/results/canary.json."""
    with EngineBench("canary") as bench:
        workflow, stable, canary = versions(bench)
        bench.purge()
        print(f"[canary] breach to rollback: {WARMUP} warm-up + {SAMPLES} releases, one at a time ...", flush=True)
        mc: list[float] = []
        raw: list[float] = []
        for index in range(WARMUP + SAMPLES):
            sample = rollback_sample(bench, workflow, stable, canary)["breach_to_rollback"]
            hop = baseline_sample()
            if index >= WARMUP:
                mc.append(sample)
                raw.append(hop)
        print(f"[canary] analysis cost at {', '.join(map(str, ANALYSIS_SIZES))} runs per arm ...", flush=True)
        analysis = analysis_samples(bench, workflow, stable, canary)
        errors = bench.worker_errors()
        conditions = bench.conditions()

    rows = [
        summarize("MC first breaching run's end -> rolled back", mc),
        summarize("raw Celery submit -> start (one hop)", raw),
    ]
    print(f"\nbreach to rollback, {SAMPLES} releases after {WARMUP} warm-up (prefork -c 2, acks_late, prefetch 1)\n")
    print_table(rows, p99=True)
    ratios = {p: getattr(rows[0], p) / getattr(rows[1], p) for p in ("p50", "p95", "p99")}
    print()
    print_rows(
        ("ratio MC / raw hop", "p50", "p95", "p99"), [("breach to rollback", *(f"{r:.1f}x" for r in ratios.values()))]
    )
    analysis_rows = [summarize(f"canary_analyse, {size:,} runs per arm", values) for size, values in analysis.items()]
    print(f"\nanalysis in this process, {ANALYSIS_REPEAT} calls each (verdict hold)\n")
    print_table(analysis_rows, p99=True)
    worst = max(rows[0].p99, rows[0].max)
    meets = worst < TARGET_S * 1000
    print(
        f"\nbreach to rollback p95 {rows[0].p95:.1f} ms, max {rows[0].max:.1f} ms: "
        f"target < {TARGET_S:.0f} s -> {verdict(meets)}"
    )
    if errors:
        print(f"\nWARNING: worker logs have errors: {errors}")
    print(describe(conditions))
    path = write_json(
        "canary",
        {
            "samples": SAMPLES,
            "warmup": WARMUP,
            "breach_to_rollback": [r.as_dict() for r in rows],
            "ratios_to_raw_hop": ratios,
            "analysis": [r.as_dict() for r in analysis_rows],
            "targets": {"breach_to_rollback_s": TARGET_S},
            "met": {"breach_to_rollback_s": meets},
            "worker_errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
