"""Makespan of an uneven DAG against its critical path. Run: python -m bench.bench_engine_makespan

The DAG (125 steps): ``root`` (echo) -> one slow branch ``slow-1 -> slow-2 -> slow-3``
(``pkg:mc/sleep@1``, 1 s each) and 40 fast branches ``fNN-a -> fNN-b -> fNN-c`` (echo),
all joined by ``join`` (echo). The slow branch is listed first, so it is queued first.

MC: makespan = execution.finished_at - time.time() before ``execution_create``. The
critical path is measured as the sum of the actual durations (finished_at - started_at)
of root, the three slow steps and join; the planned critical path is 3 s (the sleeps).
Raw Celery runs the same shape as a canvas beside it, for information:
``chain(noop, chord([chain(sleep_for x 3), 40 x chain(noop x 3)], mark_start))``;
its makespan is compared with the planned 3 s.

Median of RUNS runs (MC and raw Celery alternate) after one warm-up each.
Target (issue 19): MC makespan / measured critical path <= 1.03 (issue 3 asked <= 1.15).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from .engine_setup import EngineBench, describe, echo, epoch, manifest, median_run, sleep, verdict
from .harness import environment, print_rows, write_json

RUNS = 3
SLOW_STEPS = 3
SLOW_SECONDS = 1.0
FAST_BRANCHES = 40
FAST_DEPTH = 3
TARGET_RATIO = 1.03
PLANNED_CRITICAL_S = SLOW_STEPS * SLOW_SECONDS
CRITICAL_STEPS = ["root", *(f"slow-{i + 1}" for i in range(SLOW_STEPS)), "join"]


def uneven_manifest() -> dict[str, Any]:
    tasks = [echo("root")]
    previous = "root"
    for i in range(SLOW_STEPS):
        tasks.append(sleep(f"slow-{i + 1}", SLOW_SECONDS, [previous]))
        previous = f"slow-{i + 1}"
    ends = [previous]
    for branch in range(FAST_BRANCHES):
        previous = "root"
        for depth in range(FAST_DEPTH):
            step = f"f{branch:02d}-{'abcdefgh'[depth]}"
            tasks.append(echo(step, [previous]))
            previous = step
        ends.append(previous)
    tasks.append(echo("join", ends))
    return manifest("bench-uneven-dag", tasks)


def mc_run(bench: EngineBench, workflow: Any) -> dict[str, Any]:
    from django.db.models import Max

    from executions.models import StepRun

    bench.purge()
    execution, called = bench.execution_start(workflow)
    execution = bench.execution_wait(execution.pk, timeout=60)
    makespan = epoch(execution.finished_at) - called
    rows = {row.step_id: row for row in StepRun.objects.filter(execution=execution, step_id__in=CRITICAL_STEPS)}
    durations = {step: epoch(rows[step].finished_at) - epoch(rows[step].started_at) for step in CRITICAL_STEPS}
    # Waits between consecutive steps of the critical path: queueing behind the fast branches shows here.
    gaps = {
        f"{a} -> {b}": epoch(rows[b].started_at) - epoch(rows[a].finished_at)
        for a, b in itertools.pairwise(CRITICAL_STEPS)
    }
    critical = sum(durations.values())
    # Steps already queued when slow-2 was queued, that started after it was: they went ahead of it
    # (critical-path priorities should keep this near 0; ADR-0012).
    slow_2 = rows["slow-2"]
    ahead = (
        StepRun.objects.filter(execution=execution, queued_at__lte=slow_2.queued_at, started_at__gte=slow_2.queued_at)
        .exclude(pk=slow_2.pk)
        .count()
    )
    fast_done = StepRun.objects.filter(execution=execution, step_id__startswith="f").aggregate(last=Max("finished_at"))
    return {
        "queued_ahead_of_slow_2": ahead,
        "fast_branches_done_s": epoch(fast_done["last"]) - called,
        "makespan_s": makespan,
        "critical_path_s": critical,
        "ratio": makespan / critical,
        "ratio_planned": makespan / PLANNED_CRITICAL_S,
        "start_to_root_started_s": epoch(rows["root"].started_at) - called,
        "durations_s": durations,
        "gaps_s": gaps,
    }


def raw_run() -> dict[str, Any]:
    from celery import chain, chord

    from .baseline_celery import mark_start, mark_wait, noop, purge, sleep_for

    purge()
    key = "bench:makespan"
    slow = chain(*(sleep_for.si(SLOW_SECONDS) for _ in range(SLOW_STEPS)))
    fast = [chain(*(noop.si(f"{b}-{d}") for d in range(FAST_DEPTH))) for b in range(FAST_BRANCHES)]
    submitted = time.time()
    chain(noop.si("root"), chord([slow, *fast], mark_start.si(key, submitted))).apply_async()
    _, started = mark_wait(key, timeout=60)
    makespan = started - submitted
    return {"makespan_s": makespan, "ratio_planned": makespan / PLANNED_CRITICAL_S}


def main() -> None:
    """Measure, print, compare with the target, and save bench/results/engine_makespan.json."""
    with EngineBench("engine_makespan") as bench:
        workflow = bench.workflow_published(uneven_manifest())
        print(f"[engine_makespan] 1 warm-up + {RUNS} runs each ...", flush=True)
        mc_run(bench, workflow)
        raw_run()
        mc_runs, raw_runs = [], []
        for index in range(RUNS):
            mc_runs.append(mc_run(bench, workflow))
            raw_runs.append(raw_run())
            print(
                f"  run {index + 1}: MC {mc_runs[-1]['makespan_s']:.2f} s (critical path "
                f"{mc_runs[-1]['critical_path_s']:.2f} s), raw {raw_runs[-1]['makespan_s']:.2f} s",
                flush=True,
            )
        errors = bench.worker_errors()
        conditions = bench.conditions()

    mc = median_run(mc_runs, "ratio")
    raw = median_run(raw_runs, "makespan_s")
    steps = 1 + SLOW_STEPS + FAST_BRANCHES * FAST_DEPTH + 1
    print(
        f"\nuneven DAG, {steps} steps: slow branch {SLOW_STEPS} x {SLOW_SECONDS:.0f} s, "
        f"{FAST_BRANCHES} fast branches x {FAST_DEPTH} echo; median of {RUNS} runs\n"
    )
    print_rows(
        ("", "makespan s", "critical path s", "makespan / critical", "makespan / planned 3 s"),
        [
            (
                "MC",
                f"{mc['makespan_s']:.3f}",
                f"{mc['critical_path_s']:.3f}",
                f"{mc['ratio']:.3f}",
                f"{mc['ratio_planned']:.3f}",
            ),
            ("raw Celery canvas", f"{raw['makespan_s']:.3f}", "-", "-", f"{raw['ratio_planned']:.3f}"),
        ],
    )
    print("\nMC critical path, median run (s):")
    print_rows(("step", "duration s"), [(step, f"{value:.3f}") for step, value in mc["durations_s"].items()])
    print()
    print_rows(("wait between", "s"), [(gap, f"{value:.3f}") for gap, value in mc["gaps_s"].items()])
    print(
        f"\nwhen slow-1 finished, {mc['queued_ahead_of_slow_2']} fast steps queued before slow-2 still started "
        f"after it was queued (critical path first: ADR-0012); the fast branches were all done "
        f"{mc['fast_branches_done_s']:.2f} s after the start"
    )
    met = mc["ratio"] <= TARGET_RATIO
    print(f"\nMC makespan / critical path {mc['ratio']:.3f}: target <= {TARGET_RATIO} -> {verdict(met)}")
    if errors:
        print(f"\nWARNING: worker logs have errors: {errors}")
    print(describe(conditions))
    path = write_json(
        "engine_makespan",
        {
            "runs": RUNS,
            "steps": steps,
            "planned_critical_path_s": PLANNED_CRITICAL_S,
            "mc_runs": mc_runs,
            "raw_runs": raw_runs,
            "mc_median": mc,
            "raw_median": raw,
            "targets": {"ratio": TARGET_RATIO},
            "met": {"ratio": met},
            "worker_errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
