"""Many small runs at once, against raw Celery chains. Run: python -m bench.bench_many_runs

A platform's real load: 200 runs of a 5-step chain (``a -> b -> c -> d -> e``, echo steps)
started back to back through ``execution_create`` in this process, as a burst from people,
schedules and triggers would. Steps/s = 1,000 / (last run's ``finished_at`` - time.time()
before the first create). The start cost is each ``execution_create`` call's time in this
process (p50, p95).

Through the HTTP API: the same 200 runs started by one client with ``POST /api/executions``
back to back, against gunicorn as docs/operations.md starts it (4 workers,
``deploy/gunicorn.conf.py``); steps/s likewise, and each request's latency (p50, p95).

Raw Celery: 200 ``chain(noop x 4, mark_start)`` submitted back to back; tasks/s = 1,000 /
(the last mark's start - submit). Worker CPU (main and pool processes) per step and per
task beside each other.

Median of RUNS runs (MC and raw Celery alternate) after one warm-up each.
Targets (issue 19): steps/s >= 60% of raw through the services (the API's figure is
reported beside it); execution_create p50 <= 8 ms.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from .engine_setup import MC_ENV, EngineBench, describe, echo, epoch, manifest, median_run, verdict
from .harness import environment, print_rows, write_json

RUNS = 3
RUN_COUNT = 200
CHAIN = 5
TARGET_RATIO = 0.60
TARGET_CREATE_P50_MS = 8.0


def chain_manifest() -> dict[str, Any]:
    steps = [f"s{i}" for i in range(CHAIN)]
    return manifest("bench-small-chain", [echo(step, steps[i - 1 : i]) for i, step in enumerate(steps)])


def _burst(bench: EngineBench, start_one: Callable[[], Any]) -> dict[str, Any]:
    """Start RUN_COUNT runs back to back with ``start_one`` (returns the run's id); wait for all.

    Steps/s until the last finishes, each start's time in this process (sorted, ms), and the
    MC worker's CPU per step.
    """
    from django.db.models import Max

    from executions.models import Execution

    bench.purge()
    cpu = bench.mc_worker.cpu_seconds()
    starts = []
    ids = []
    started = time.time()
    for _ in range(RUN_COUNT):
        called = time.perf_counter()
        ids.append(start_one())
        starts.append((time.perf_counter() - called) * 1000)
    for execution_id in ids:
        bench.execution_wait(execution_id, timeout=300)
    last = Execution.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]
    elapsed = epoch(last) - started
    cpu = bench.mc_worker.cpu_seconds() - cpu
    steps = RUN_COUNT * CHAIN
    starts.sort()
    return {
        "elapsed_s": elapsed,
        "per_s": steps / elapsed,
        "starts_ms": starts,
        "worker_cpu_ms_per_step": cpu * 1000 / steps,
    }


def _p50_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), values[int(len(values) * 0.95) - 1]


def mc_burst(bench: EngineBench, workflow: Any) -> dict[str, Any]:
    from executions.services import execution_create

    def start_one() -> Any:
        return execution_create(tenant=bench.tenant, actor=bench.user, workflow=workflow)[0].pk

    run = _burst(bench, start_one)
    creates = run.pop("starts_ms")
    run["create_p50_ms"], run["create_p95_ms"] = _p50_p95(creates)
    run["creates_s"] = sum(creates) / 1000
    return run


def api_burst(bench: EngineBench, client: Any, workflow: Any) -> dict[str, Any]:
    def start_one() -> Any:
        response = client.post("/api/executions", json={"workflow": workflow.name})
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/executions answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    run = _burst(bench, start_one)
    run["request_p50_ms"], run["request_p95_ms"] = _p50_p95(run.pop("starts_ms"))
    return run


def raw_burst(bench: EngineBench) -> dict[str, Any]:
    from celery import chain

    from .baseline_celery import mark_start, mark_wait, noop, purge

    purge()
    cpu = bench.baseline_worker.cpu_seconds()
    submitted = time.time()
    for _ in range(RUN_COUNT):
        chain(*(noop.si(i) for i in range(CHAIN - 1)), mark_start.si("bench:many", submitted)).apply_async()
    last = 0.0
    for _ in range(RUN_COUNT):
        _, started = mark_wait("bench:many", timeout=300)
        last = max(last, started)
    elapsed = last - submitted
    time.sleep(0.2)  # let the worker finish acknowledging before reading its CPU time
    cpu = bench.baseline_worker.cpu_seconds() - cpu
    tasks = RUN_COUNT * CHAIN
    return {"elapsed_s": elapsed, "per_s": tasks / elapsed, "worker_cpu_ms_per_task": cpu * 1000 / tasks}


def main() -> None:
    """Measure, print, compare with the targets, save bench/results/many_runs.json."""
    import httpx

    from .bench_api_capacity import BASE_URL, Gunicorn

    with EngineBench("many_runs") as bench:
        from mc_project.tenancy.services import token_create

        workflow = bench.workflow_published(chain_manifest())
        # The bench measures the engine, not the per-user rate limit.
        server = Gunicorn({**os.environ, **MC_ENV, "MC_THROTTLE_USER": "100000/min"})
        try:
            server.start()
            token = token_create(user=bench.user, name="bench")[1]
            client = httpx.Client(base_url=BASE_URL, headers={"Authorization": f"Token {token}"}, timeout=60)
            print(f"[many_runs] {RUN_COUNT} runs of a {CHAIN}-step chain: 1 warm-up + {RUNS} runs each ...", flush=True)
            mc_burst(bench, workflow)
            api_burst(bench, client, workflow)
            raw_burst(bench)
            mc_runs, api_runs, raw_runs = [], [], []
            for index in range(RUNS):
                mc_runs.append(mc_burst(bench, workflow))
                api_runs.append(api_burst(bench, client, workflow))
                raw_runs.append(raw_burst(bench))
                print(
                    f"  run {index + 1}: MC {mc_runs[-1]['per_s']:.1f} steps/s ({mc_runs[-1]['elapsed_s']:.2f} s, "
                    f"create p50 {mc_runs[-1]['create_p50_ms']:.1f} ms), API {api_runs[-1]['per_s']:.1f}/s, "
                    f"raw {raw_runs[-1]['per_s']:.1f}/s",
                    flush=True,
                )
        finally:
            server.stop()
        errors = {**bench.worker_errors(), "gunicorn": server.errors()}
        conditions = bench.conditions()
    mc, api, raw = median_run(mc_runs, "per_s"), median_run(api_runs, "per_s"), median_run(raw_runs, "per_s")
    ratio = mc["per_s"] / raw["per_s"]
    api_ratio = api["per_s"] / raw["per_s"]
    print(f"\n{RUN_COUNT} runs of {CHAIN} steps started back to back, median of {RUNS}\n")
    print_rows(
        ("", "per s", "s", "worker CPU ms per step/task", "start p50 ms", "start p95 ms"),
        [
            (
                "MC (services)",
                f"{mc['per_s']:.1f}",
                f"{mc['elapsed_s']:.2f}",
                f"{mc['worker_cpu_ms_per_step']:.2f}",
                f"{mc['create_p50_ms']:.1f}",
                f"{mc['create_p95_ms']:.1f}",
            ),
            (
                "MC (HTTP API, 1 client)",
                f"{api['per_s']:.1f}",
                f"{api['elapsed_s']:.2f}",
                f"{api['worker_cpu_ms_per_step']:.2f}",
                f"{api['request_p50_ms']:.1f}",
                f"{api['request_p95_ms']:.1f}",
            ),
            (
                "raw Celery chains",
                f"{raw['per_s']:.1f}",
                f"{raw['elapsed_s']:.2f}",
                f"{raw['worker_cpu_ms_per_task']:.2f}",
                "",
                "",
            ),
        ],
    )
    meets_ratio = ratio >= TARGET_RATIO
    meets_create = mc["create_p50_ms"] <= TARGET_CREATE_P50_MS
    print(f"\nMC {ratio:.0%} of raw Celery: target >= {TARGET_RATIO:.0%} -> {verdict(meets_ratio)}")
    print(f"through the HTTP API: {api_ratio:.0%} of raw Celery (reported, no target)")
    print(
        f"execution_create p50 {mc['create_p50_ms']:.1f} ms: target <= {TARGET_CREATE_P50_MS} ms "
        f"-> {verdict(meets_create)}"
    )
    print(describe(conditions))
    if any(errors.values()):
        print(f"errors: {errors}")
    write_json(
        "many_runs",
        {
            "mc_runs": mc_runs,
            "api_runs": api_runs,
            "raw_runs": raw_runs,
            "ratio": ratio,
            "api_ratio": api_ratio,
            "targets": {"ratio": TARGET_RATIO, "create_p50_ms": TARGET_CREATE_P50_MS},
            "met": {"ratio": meets_ratio, "create_p50_ms": meets_create},
            "conditions": conditions,
            "environment": environment(),
            "worker_errors": errors,
        },
    )


if __name__ == "__main__":
    main()
