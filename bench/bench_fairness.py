"""Fairness between tenants: one tenant's burst does not starve another's runs. Run: python -m bench.bench_fairness

Two tenants share the MC worker (prefork, 2 processes, as every engine bench). Tenant
"big" starts BIG_RUNS runs of a 5-step chain back to back; right after them, tenant
"small" starts SMALL_RUNS runs of the same workflow (its own copy). Measured per run:
latency = ``finished_at`` - the time before its ``execution_create``.

Beside it, in the same run: the small tenant's runs alone on idle workers (its latency
without the burst), and raw Celery with the same shape: BIG_RUNS chains of 5 ``noop``
tasks then SMALL_RUNS more, where each chain's latency is its last task's start - its
submit.

Starvation would show as the small tenant's runs finishing only after the big tenant's
last one. Reported: the small tenant's median latency during the burst against the big
tenant's median and last, and the same ratios for raw Celery (whose FIFO queue is the
reference for "no worse than first come, first served").

Median of RUNS runs after one warm-up.
Target (issue 19): the small tenant's median latency during the burst <= the big
tenant's median (no tenant's runs wait for another's burst to end).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from .bench_many_runs import chain_manifest
from .engine_setup import EngineBench, describe, epoch, verdict
from .harness import environment, print_rows, write_json

RUNS = 3
BIG_RUNS = 100
SMALL_RUNS = 5
CHAIN = 5


def _start(bench: EngineBench, tenant: Any, user: Any, workflow: Any, count: int) -> list[tuple[Any, float]]:
    from executions.services import execution_create

    started = []
    for _ in range(count):
        called = time.time()
        execution, _ = execution_create(tenant=tenant, actor=user, workflow=workflow)
        started.append((execution.pk, called))
    return started


def _latencies(bench: EngineBench, started: list[tuple[Any, float]]) -> list[float]:
    latencies = []
    for execution_id, called in started:
        execution = bench.execution_wait(execution_id, timeout=600)
        latencies.append(epoch(execution.finished_at) - called)
    return latencies


def mc_round(bench: EngineBench, big: tuple[Any, Any, Any], small: tuple[Any, Any, Any]) -> dict[str, Any]:
    bench.purge()
    alone = _latencies(bench, _start(bench, *small, SMALL_RUNS))
    bench.purge()
    big_started = _start(bench, *big, BIG_RUNS)
    small_started = _start(bench, *small, SMALL_RUNS)
    big_latencies = _latencies(bench, big_started)
    small_latencies = _latencies(bench, small_started)
    return {
        "small_alone_p50_s": statistics.median(alone),
        "small_p50_s": statistics.median(small_latencies),
        "small_max_s": max(small_latencies),
        "big_p50_s": statistics.median(big_latencies),
        "big_max_s": max(big_latencies),
    }


def raw_round() -> dict[str, Any]:
    from celery import chain

    from .baseline_celery import mark_start, mark_wait, noop, purge

    def submit(key: str, count: int) -> None:
        for _ in range(count):
            submitted = time.time()
            chain(*(noop.si(i) for i in range(CHAIN - 1)), mark_start.si(key, submitted)).apply_async()

    def wait(key: str, count: int) -> list[float]:
        latencies = []
        for _ in range(count):
            submitted, started = mark_wait(key, timeout=600)
            latencies.append(started - submitted)
        return latencies

    purge()
    submit("bench:fair-big", BIG_RUNS)
    submit("bench:fair-small", SMALL_RUNS)
    big, small = wait("bench:fair-big", BIG_RUNS), wait("bench:fair-small", SMALL_RUNS)
    return {
        "small_p50_s": statistics.median(small),
        "small_max_s": max(small),
        "big_p50_s": statistics.median(big),
        "big_max_s": max(big),
    }


def main() -> None:
    """Measure, print, compare with the target, save bench/results/fairness.json."""
    with EngineBench("fairness") as bench:
        from mc_project.tenancy.services import tenant_create, user_create
        from workflows.services import workflow_create, workflow_publish

        tenants = []
        for slug in ("big", "small"):
            tenant = tenant_create(slug=f"bench-{slug}", name=f"Tenant {slug}")
            user = user_create(username=f"bench-{slug}", tenant=tenant, role="admin")
            workflow = workflow_create(tenant=tenant, actor=user, manifest=chain_manifest())
            workflow_publish(workflow=workflow, actor=user)
            tenants.append((tenant, user, workflow))
        big, small = tenants
        print(f"[fairness] {BIG_RUNS} runs of tenant big, then {SMALL_RUNS} of tenant small ...", flush=True)
        mc_round(bench, big, small)
        raw_round()
        mc_runs, raw_runs = [], []
        for index in range(RUNS):
            mc_runs.append(mc_round(bench, big, small))
            raw_runs.append(raw_round())
            print(
                f"  run {index + 1}: MC small p50 {mc_runs[-1]['small_p50_s']:.2f} s, "
                f"big p50 {mc_runs[-1]['big_p50_s']:.2f} s; raw small p50 {raw_runs[-1]['small_p50_s']:.2f} s",
                flush=True,
            )
        errors = bench.worker_errors()
        conditions = bench.conditions()
    mc = sorted(mc_runs, key=lambda run: run["small_p50_s"])[len(mc_runs) // 2]
    raw = sorted(raw_runs, key=lambda run: run["small_p50_s"])[len(raw_runs) // 2]
    print(f"\n{BIG_RUNS} runs of tenant big, then {SMALL_RUNS} of tenant small (5-step chains), median run\n")
    print_rows(
        ("", "small alone p50 s", "small p50 s", "small max s", "big p50 s", "big max s"),
        [
            (
                "MC",
                f"{mc['small_alone_p50_s']:.2f}",
                f"{mc['small_p50_s']:.2f}",
                f"{mc['small_max_s']:.2f}",
                f"{mc['big_p50_s']:.2f}",
                f"{mc['big_max_s']:.2f}",
            ),
            (
                "raw Celery (FIFO)",
                "",
                f"{raw['small_p50_s']:.2f}",
                f"{raw['small_max_s']:.2f}",
                f"{raw['big_p50_s']:.2f}",
                f"{raw['big_max_s']:.2f}",
            ),
        ],
    )
    met = mc["small_p50_s"] <= mc["big_p50_s"]
    print(
        f"\nMC: the small tenant's median {mc['small_p50_s']:.2f} s against the big tenant's median "
        f"{mc['big_p50_s']:.2f} s and last {mc['big_max_s']:.2f} s: target small <= big median -> {verdict(met)}"
    )
    print(describe(conditions))
    if errors:
        print(f"worker errors: {errors}")
    write_json(
        "fairness",
        {
            "mc_runs": mc_runs,
            "raw_runs": raw_runs,
            "target": "small tenant p50 <= big tenant p50",
            "met": met,
            "conditions": conditions,
            "environment": environment(),
            "worker_errors": errors,
        },
    )


if __name__ == "__main__":
    main()
