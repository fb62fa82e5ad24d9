"""API capacity under load, against gunicorn as documented. Run: python -m bench.bench_api_capacity

Not a timed test: it measures what the API serves on this machine and prints it.

Set-up (everything the bench needs, on a fresh machine): flushes Redis databases 3, 4
and 5 (broker, results, cache), drops and recreates the PostgreSQL database ``mc_bench``,
migrates it, creates a tenant, one author per client with an API token
(``tenant_create``, ``user_create``, ``token_create``), and ``SEED_WORKFLOWS`` published
1-step workflows (``pkg:mc/echo@1``). Then it starts one Celery worker per queue
(docs/operations.md) so the runs it starts really execute, and gunicorn with the
documented command: ``gunicorn -c deploy/gunicorn.conf.py mc_project.wsgi --bind
127.0.0.1:58100 --workers 4 --access-logfile -``.

Measured, over HTTP (httpx, asyncio):

1. single client: each kind of request in turn, ``SINGLE_SAMPLES`` after 3 warm-up;
2. load: ``--clients`` (50) closed-loop clients, each with its own token, no think time,
   each request drawn from the mix: list runs (``GET /api/executions``), list workflows
   (``GET /api/workflows``), start a 1-step run (``POST /api/executions``), weights
   2:2:1; ``--warmup`` seconds unrecorded, then ``--seconds`` (60) recorded. Beside them,
   in the same run, one more client probes ``GET /healthz`` every 100 ms: it does no
   work, so its latency is the server's queueing, and each kind's latency is reported
   as a ratio to it.

Requests/s counts requests that finished in the recorded window; latencies are of the
same requests. Any status but 200 (lists) and 201 (start) or a transport error is an
error. CPU seconds per request of gunicorn, the Celery workers, this load generator and
the PostgreSQL backends of ``mc_bench`` are read from /proc, beside the machine's.
At the end the bench waits for the runs it started to finish and stops its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from .engine_setup import LOG_DIR, ROOT, WorkerProcess, _git_head
from .harness import Result, environment, print_rows, summarize, write_json

PORT = 58100
BASE_URL = f"http://127.0.0.1:{PORT}"
DB_NAME = "mc_bench"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_DBS = (3, 4, 5)  # broker, results, cache (throttle counters)
VAR_DIR = Path("/tmp/mc-var-bench")  # noqa: S108 - the bench's own, emptied at each run
GUNICORN_WORKERS = 4
# One worker per queue, as docs/operations.md runs them, at concurrencies a 2-core machine can take.
WORKER_QUEUES = (("mc.small", 2), ("mc.medium", 1), ("mc.large", 1), ("mc.control", 1), ("mc.receipts", 1))
MIX = (("list_runs", 2), ("list_workflows", 2), ("start_run", 1))
EXPECTED_STATUS = {"list_runs": 200, "list_workflows": 200, "start_run": 201, "healthz": 200}
HEALTHZ_INTERVAL = 0.1
SINGLE_SAMPLES = 20
SEED_WORKFLOWS = 10
REQUEST_TIMEOUT = 60.0

MC_ENV = {
    "DJANGO_SETTINGS_MODULE": "mc_project.settings",
    "MC_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "MC_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DBS[0]}",
    "MC_RESULT_BACKEND": f"redis://127.0.0.1:6379/{REDIS_DBS[1]}",
    "MC_CACHE_URL": f"redis://127.0.0.1:6379/{REDIS_DBS[2]}",
    "MC_VAR_DIR": str(VAR_DIR),
    "MC_DEBUG": "false",
    "MC_LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class Sample:
    """One request: its kind, when it started and ended (monotonic seconds), status or error."""

    kind: str
    started: float
    ended: float
    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.status == EXPECTED_STATUS[self.kind]

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


# --- processes and their CPU ------------------------------------------------------------


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """A process and its children (one level: gunicorn's and Celery's pools)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [pid, *(int(child) for child in children.read_text().split())]
    except OSError:
        return [pid]


_admin_connection: Any = None


def _postgres_backends() -> list[int]:
    """PostgreSQL backends connected to the bench's database (same machine: their pids are ours to read)."""
    import psycopg

    global _admin_connection
    if _admin_connection is None or _admin_connection.closed:
        _admin_connection = psycopg.connect(ADMIN_DSN, autocommit=True)  # one, not a new backend per look
    rows = _admin_connection.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)).fetchall()
    return [pid for (pid,) in rows]


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


class Gunicorn:
    """The API as docs/operations.md starts it, on the bench's port, logging to files."""

    def __init__(self, env: dict[str, str], *, workers: int = GUNICORN_WORKERS) -> None:
        self.argv = [
            sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "mc_project.wsgi",
            "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers), "--access-logfile", "-",
        ]  # fmt: skip
        self.env = env
        self.access_log = LOG_DIR / "api_capacity-gunicorn-access.log"
        self.error_log = LOG_DIR / "api_capacity-gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.access_log.open("wb") as out, self.error_log.open("wb") as err:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.error_log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{BASE_URL}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in {timeout} s:\n{self.error_log.read_text()[-4000:]}")

    def stop(self, *, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def pids(self) -> list[int]:
        return _tree(self.process.pid) if self.process else []

    def errors(self) -> list[str]:
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return [line for line in text.splitlines() if "Traceback" in line or "[ERROR]" in line or "CRITICAL" in line]


def cpu_snapshot(server: Gunicorn, workers: Sequence[WorkerProcess]) -> dict[str, Any]:
    """CPU seconds so far per component, by pid (so processes that come and go are counted once)."""
    worker_pids = [pid for w in workers if w.process for pid in _tree(w.process.pid)]
    return {
        "gunicorn": {pid: _cpu(pid) for pid in server.pids()},
        "celery workers": {pid: _cpu(pid) for pid in worker_pids},
        "postgres (mc_bench)": {pid: _cpu(pid) for pid in _postgres_backends()},
        "load generator": {os.getpid(): _cpu(os.getpid())},
        "machine": _machine_busy(),
    }


def cpu_merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``later``, plus the processes ``earlier`` saw that have exited since, with their last CPU."""
    merged = {name: {**pids, **later[name]} for name, pids in earlier.items() if name != "machine"}
    merged["machine"] = later["machine"]
    return merged


def cpu_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds each component used between two snapshots; a new process counts from 0."""
    used = {}
    for name, pids in after.items():
        if name == "machine":
            continue
        used[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in pids.items())
    used["machine (all processes)"] = after["machine"][0] - before["machine"][0]
    return used


# --- set-up through MC's services -------------------------------------------------------


def database_recreate(env: dict[str, str]) -> None:
    import psycopg
    import redis

    for db in REDIS_DBS:
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    shutil.rmtree(VAR_DIR, ignore_errors=True)
    VAR_DIR.mkdir(parents=True)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def one_step_manifest(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "description": "API capacity benchmark",
        "tasks": [{"id": "hello", "uses": "pkg:mc/echo@1", "with": {"message": "hello"}}],
    }


def tenant_populate(users: int) -> tuple[list[str], str]:
    """A tenant, ``users`` authors with a token each, published 1-step workflows; (tokens, workflow name)."""
    import django

    django.setup()
    from mc_project.tenancy.services import tenant_create, token_create, user_create
    from workflows.services import workflow_create, workflow_publish

    tenant = tenant_create(slug="bench-api", name="API capacity benchmark")
    publisher = user_create(username="bench-publisher", tenant=tenant, role="publisher")
    for index in range(SEED_WORKFLOWS):
        workflow = workflow_create(tenant=tenant, actor=publisher, manifest=one_step_manifest(f"bench-api-{index:02d}"))
        workflow_publish(workflow=workflow, actor=publisher)
    tokens = []
    for index in range(users):
        user = user_create(username=f"bench-client-{index:02d}", tenant=tenant, role="author")
        tokens.append(token_create(user=user, name="bench")[1])
    return tokens, "bench-api-00"


def runs_settle(*, timeout: float) -> dict[str, int]:
    """Wait until every run is terminal (or ``timeout``); their counts by status."""
    from django.db.models import Count

    from executions.models import Execution

    deadline = time.monotonic() + timeout
    while True:
        counts = dict(Execution.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        if set(counts) <= {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


# --- the clients ----------------------------------------------------------------------------


async def request(client: httpx.AsyncClient, kind: str, token: str, workflow: str) -> Sample:
    headers = {"Authorization": f"Token {token}"}
    started = time.monotonic()
    try:
        if kind == "list_runs":
            response = await client.get("/api/executions", headers=headers)
        elif kind == "list_workflows":
            response = await client.get("/api/workflows", headers=headers)
        elif kind == "start_run":
            response = await client.post("/api/executions", headers=headers, json={"workflow": workflow})
        else:
            response = await client.get("/healthz")
    except httpx.HTTPError as exc:
        return Sample(kind, started, time.monotonic(), 0, type(exc).__name__)
    return Sample(kind, started, time.monotonic(), response.status_code)


async def single_client(tokens: list[str], workflow: str) -> list[Sample]:
    """Each kind in turn from one client, on an otherwise idle server."""
    samples = []
    async with httpx.AsyncClient(base_url=BASE_URL, timeout=REQUEST_TIMEOUT) as client:
        for kind in [*(k for k, _ in MIX), "healthz"]:
            for index in range(3 + SINGLE_SAMPLES):
                sample = await request(client, kind, tokens[0], workflow)
                if index >= 3:
                    samples.append(sample)
    return samples


async def load(
    tokens: list[str], workflow: str, *, clients: int, warmup: float, seconds: float, snapshot: Any
) -> tuple[list[Sample], float, float, list[Any]]:
    """Closed-loop clients (client i uses token i modulo their number) and the /healthz probe.

    Returns the samples, the recorded window's start and end, and the CPU snapshots at both.
    """
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    samples: list[Sample] = []
    start = time.monotonic()
    window = (start + warmup, start + warmup + seconds)
    snapshots: list[Any] = []
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)

    async with httpx.AsyncClient(base_url=BASE_URL, timeout=REQUEST_TIMEOUT, limits=limits) as client:

        async def closed_loop(index: int) -> None:
            rng = random.Random(index)
            while time.monotonic() < window[1]:
                samples.append(
                    await request(client, rng.choices(kinds, weights)[0], tokens[index % len(tokens)], workflow)
                )

        async def probe() -> None:
            while time.monotonic() < window[1]:
                samples.append(await request(client, "healthz", "", workflow))
                await asyncio.sleep(HEALTHZ_INTERVAL)

        async def measure() -> None:
            # Every second in the window: a PostgreSQL backend closed at MC_DB_CONN_MAX_AGE
            # keeps the CPU it was last seen with.
            await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
            snapshots.append(snapshot())
            latest = snapshot()
            while time.monotonic() < window[1]:
                await asyncio.sleep(min(1.0, max(0.0, window[1] - time.monotonic())))
                latest = cpu_merge(latest, snapshot())
            snapshots.append(latest)

        await asyncio.gather(*(closed_loop(i) for i in range(clients)), probe(), measure())
    return samples, window[0], window[1], snapshots


# --- report ---------------------------------------------------------------------------------


def summary_rows(samples: list[Sample], seconds: float) -> tuple[list[Result], list[tuple[str, str, str, str, str]]]:
    """Latency summaries (ok requests) and a count/rate/error row per kind, overall (MC's kinds) last."""
    groups = {kind: [s for s in samples if s.kind == kind] for kind in [*(k for k, _ in MIX), "healthz"]}
    groups["overall (mix)"] = [s for s in samples if s.kind != "healthz"]
    results, counts = [], []
    for name, group in groups.items():
        ok = [s.ms for s in group if s.ok]
        errors = Counter(s.error or str(s.status) for s in group if not s.ok)
        if ok:
            results.append(summarize(name, ok))
        rate = f"{len(group) / seconds:.1f}"
        counts.append((name, str(len(group)), rate, str(sum(errors.values())), str(dict(errors))))
    return results, counts


def print_latencies(results: list[Result]) -> None:
    print_rows(
        ("request", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms"),
        [(r.name, str(r.repeat), *(f"{v:.1f}" for v in (r.p50, r.p95, r.p99, r.mean, r.max))) for r in results],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Set up, measure one client then the load, print, and save bench/results/api_capacity.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="recorded load (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unrecorded load before it (default 5)")
    parser.add_argument(
        "--tokens", type=int, default=0, help="distinct users/tokens shared by the clients (default: one per client)"
    )
    parser.add_argument("--gunicorn-workers", type=int, default=GUNICORN_WORKERS, help="default 4, as documented")
    args = parser.parse_args(argv)

    env = {**os.environ, **MC_ENV}
    loadavg_start = os.getloadavg()
    server = Gunicorn(env, workers=args.gunicorn_workers)
    workers = [
        WorkerProcess(f"api_capacity-{q.removeprefix('mc.')}", "mc_project", (q,), env=env, events=False, concurrency=c)
        for q, c in WORKER_QUEUES
    ]
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        print(f"[api_capacity] recreating {DB_NAME}, flushing Redis dbs {REDIS_DBS}, migrating ...", flush=True)
        database_recreate(env)
        os.environ.update(MC_ENV)
        tokens, workflow = tenant_populate(args.tokens or args.clients)
        print(
            f"[api_capacity] starting {len(workers)} Celery workers and gunicorn --workers {args.gunicorn_workers} ..."
        )
        for worker in workers:
            worker.start()
        server.start()
        print(f"[api_capacity] single client, {SINGLE_SAMPLES} samples per kind ...", flush=True)
        single = asyncio.run(single_client(tokens, workflow))
        print(
            f"[api_capacity] {args.clients} clients: {args.warmup:.0f} s warm-up, {args.seconds:.0f} s recorded ...",
            flush=True,
        )
        loadavg_load_start = os.getloadavg()
        samples, window_start, window_end, snapshots = asyncio.run(
            load(
                tokens,
                workflow,
                clients=args.clients,
                warmup=args.warmup,
                seconds=args.seconds,
                snapshot=partial(cpu_snapshot, server, workers),
            )
        )
        loadavg_load_end = os.getloadavg()
        print("[api_capacity] waiting for the runs to finish ...", flush=True)
        runs = runs_settle(timeout=120)
        errors = {w.name: w.errors() for w in workers if w.errors()}
        if server.errors():
            errors["gunicorn"] = server.errors()
    finally:
        server.stop()
        for worker in workers:
            worker.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)

    seconds = window_end - window_start
    recorded = [s for s in samples if window_start <= s.ended <= window_end]
    results, counts = summary_rows(recorded, seconds)
    single_results, _ = summary_rows(single, 1.0)
    by_name = {r.name: r for r in results}
    healthz = by_name.get("healthz")
    mc_requests = sum(1 for s in recorded if s.kind != "healthz")
    cpu = cpu_used(*snapshots)

    print(f"\nsingle client ({SINGLE_SAMPLES} samples per kind, idle server)\n")
    print_latencies(single_results[:-1])
    print(
        f"\n{args.clients} clients, {seconds:.1f} s recorded after {args.warmup:.0f} s warm-up; "
        f"/healthz probed every {HEALTHZ_INTERVAL * 1000:.0f} ms beside them\n"
    )
    print_rows(("request", "count", "req/s", "errors", "by status"), counts)
    print()
    print_latencies(results)
    ratios: dict[str, dict[str, float]] = {}
    if healthz is not None:
        for result in results:
            if result.name != "healthz":
                ratios[result.name] = {p: getattr(result, p) / getattr(healthz, p) for p in ("p50", "p95", "p99")}
        print()
        print_rows(
            ("ratio to /healthz under the same load", "p50", "p95", "p99"),
            [(name, *(f"{v:.1f}x" for v in r.values())) for name, r in ratios.items()],
        )
    overall = by_name.get("overall (mix)")
    if overall is not None:
        rate = mc_requests / seconds
        print(
            f"\nLittle's law: {rate:.1f} req/s x mean {overall.mean / 1000:.2f} s = "
            f"{rate * overall.mean / 1000:.1f} requests in the server (clients: {args.clients})"
        )
    print("\nCPU during the recorded window, and per MC request (healthz probes not counted)\n")
    cores = os.cpu_count() or 1
    print_rows(
        ("component", "CPU s", f"share of {cores} cores", "ms per request"),
        [
            (name, f"{used:.1f}", f"{used / (seconds * cores):.0%}", f"{used * 1000 / max(1, mc_requests):.1f}")
            for name, used in cpu.items()
        ],
    )
    print(f"\nruns started by the bench, by status after the load: {runs}")
    if errors:
        print(f"\nWARNING: errors in the logs: {errors}")
    conditions = {
        "cores": os.cpu_count(),
        "loadavg_at_start": loadavg_start,
        "loadavg_load_start": loadavg_load_start,
        "loadavg_load_end": loadavg_load_end,
        "engine_commit": _git_head(),
        "gunicorn_workers": args.gunicorn_workers,
        "tokens": len(tokens),
        "celery_workers": dict(WORKER_QUEUES),
    }
    print(
        f"\n{conditions['cores']} cores; load average {_fmt(loadavg_start)} at start, "
        f"{_fmt(loadavg_load_end)} at the end of the load; engine at {conditions['engine_commit']}"
    )
    path = write_json(
        "api_capacity",
        {
            "clients": args.clients,
            "seconds": seconds,
            "warmup": args.warmup,
            "mix": dict(MIX),
            "requests_per_second": mc_requests / seconds,
            "counts": [dict(zip(("name", "count", "rps", "errors", "by_status"), row, strict=True)) for row in counts],
            "results": [r.as_dict() for r in results],
            "single_client": [r.as_dict() for r in single_results],
            "ratios_to_healthz": ratios,
            "cpu_seconds": cpu,
            "runs": runs,
            "errors": errors,
            "environment": environment(),
            "conditions": conditions,
        },
    )
    print(f"\nsaved {path}")


def _fmt(loadavg: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in loadavg)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    main()
