"""What the engine benches share: a fresh ``mc_bench`` database, an MC worker, a raw-Celery worker.

``EngineBench`` is a context manager. On entry it flushes the bench's Redis databases,
drops and recreates the PostgreSQL database ``mc_bench``, migrates it, calls
``django.setup()`` in this process with the same environment as the workers, creates a
tenant and a user through the services, and starts two worker subprocesses with the
same pool (prefork, 2 processes, acks_late, prefetch 1):

* MC: ``celery -A mc_project worker -Q mc.small,mc.medium,mc.large,mc.control,mc.receipts -c 2``;
* raw Celery: ``celery -A bench.baseline_celery worker -Q bench.baseline -c 2``.

On exit (also after Ctrl-C, SIGTERM or an exception) it stops both. Worker logs go to
``var/bench/logs/``. This process submits work and reads results from the database and
Redis; it runs no tasks itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var" / "bench"
LOG_DIR = VAR_DIR / "logs"
DB_NAME = "mc_bench"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CONCURRENCY = 2
MC_QUEUES = ("mc.small", "mc.medium", "mc.large", "mc.control", "mc.receipts")
# Redis databases owned by the benches: MC broker 12, MC results 11, baseline broker 10, results 9.
BENCH_REDIS_DBS = (12, 11, 10, 9)

MC_ENV = {
    "DJANGO_SETTINGS_MODULE": "mc_project.settings",
    "MC_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "MC_BROKER_URL": "redis://127.0.0.1:6379/12",
    "MC_RESULT_BACKEND": "redis://127.0.0.1:6379/11",
    "MC_VAR_DIR": str(VAR_DIR),
    # Production-like: DEBUG keeps every SQL query of a worker in memory (Celery warns about it).
    "MC_DEBUG": "false",
    "MC_LOG_LEVEL": "WARNING",
}


class WorkerProcess:
    """One ``celery worker`` subprocess in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        app: str,
        queues: Sequence[str],
        *,
        env: dict[str, str],
        events: bool,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.name = name
        self.argv = [
            sys.executable, "-m", "celery", "-A", app, "worker",
            "-Q", ",".join(queues), "-c", str(concurrency), "-P", "prefork",
            "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "INFO",
        ]  # fmt: skip
        if events:
            self.argv.append("-E")
        self.env = env
        self.log_path = LOG_DIR / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start in {timeout} s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 15) -> None:
        """SIGTERM the process group (warm shutdown), SIGKILL it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker's main process and its pool processes so far."""
        if self.process is None:
            return 0.0
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(pid) for pid in children.read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a pool process that just exited
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_bytes()[-size:].decode(errors="replace") if self.log_path.exists() else ""

    def errors(self) -> list[str]:
        """ERROR/CRITICAL lines of the log (a run with errors has numbers nobody should trust)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " ERROR" in line or "CRITICAL" in line or "Traceback" in line]


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def redis_flush() -> None:
    import redis

    for db in BENCH_REDIS_DBS:
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def database_recreate() -> None:
    """Drop and create ``mc_bench``, then migrate it with ``manage.py migrate``."""
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **MC_ENV},
        check=True,
    )


class EngineBench:
    """A fresh database, this process set up as a Django client, an MC and a raw-Celery worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        env = {**os.environ, **MC_ENV}
        self.mc_worker = WorkerProcess(f"{name}-mc", "mc_project", MC_QUEUES, env=env, events=False)
        self.baseline_worker = WorkerProcess(
            f"{name}-baseline", "bench.baseline_celery", ("bench.baseline",), env=dict(os.environ), events=False
        )
        self.tenant: Any = None
        self.user: Any = None
        self._previous_sigterm: Any = None
        self.loadavg_start = os.getloadavg()

    def __enter__(self) -> EngineBench:
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._teardown()

    def _setup(self) -> None:
        print(f"[{self.name}] recreating database {DB_NAME} and flushing Redis dbs {BENCH_REDIS_DBS} ...", flush=True)
        redis_flush()
        database_recreate()
        os.environ.update(MC_ENV)
        import django

        django.setup()
        from mc_project.tenancy.services import tenant_create, user_create

        self.tenant = tenant_create(slug="bench", name="Benchmarks")
        self.user = user_create(username="bench", tenant=self.tenant, role="admin")
        print(f"[{self.name}] starting workers (prefork, -c {CONCURRENCY}) ...", flush=True)
        self.mc_worker.start()
        self.baseline_worker.start()

    def _teardown(self) -> None:
        for worker in (self.mc_worker, self.baseline_worker):
            worker.stop()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    # --- between runs ---------------------------------------------------------------------

    def purge(self) -> None:
        """Empty every queue of both workers (and the baseline's results and marks)."""
        from mc_project.celery import app as mc_app

        from . import baseline_celery

        with mc_app.connection_for_write() as conn:
            for queue in MC_QUEUES:
                conn.default_channel.queue_purge(queue)
        baseline_celery.purge()

    def worker_errors(self) -> dict[str, list[str]]:
        return {w.name: w.errors() for w in (self.mc_worker, self.baseline_worker) if w.errors()}

    def conditions(self) -> dict[str, Any]:
        """What the machine was doing: other load on 2 cores moves every figure here."""
        return {
            "cores": os.cpu_count(),
            "loadavg_at_start": self.loadavg_start,
            "loadavg_at_end": os.getloadavg(),
            "engine_commit": _git_head(),
            "worker_concurrency": CONCURRENCY,
            "mc_env": {k: v for k, v in MC_ENV.items() if k != "MC_VAR_DIR"},
        }

    # --- MC through its services ------------------------------------------------------------

    def workflow_published(self, manifest: dict[str, Any]) -> Any:
        """Create a workflow from ``manifest`` and publish it; return the Workflow."""
        from workflows.services import workflow_create, workflow_publish

        workflow = workflow_create(tenant=self.tenant, actor=self.user, manifest=manifest)
        workflow_publish(workflow=workflow, actor=self.user)
        return workflow

    def execution_start(self, workflow: Any) -> tuple[Any, float]:
        """Start a run of the latest published version; return it and time.time() just before the call."""
        from executions.services import execution_create

        called = time.time()
        execution, _ = execution_create(tenant=self.tenant, actor=self.user, workflow=workflow)
        return execution, called

    def execution_wait(self, execution_id: Any, *, timeout: float = 120, interval: float = 0.05) -> Any:
        """Poll the row until the execution is terminal; fail loudly unless it succeeded.

        The poll interval does not bias the figures: they come from timestamps the worker
        wrote on the rows. Polling reads only a few columns: the row's ``plan`` can be
        hundreds of KB, and reading it 20 times a second would load the machine under test.
        """
        from executions.models import Execution

        columns = ("id", "status", "steps_remaining", "error", "created_at", "finished_at")
        deadline = time.monotonic() + timeout
        while True:
            execution = Execution.objects.only(*columns).get(pk=execution_id)
            if execution.is_terminal:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"execution {execution_id} still {execution.status} after {timeout} s, "
                    f"{execution.steps_remaining} steps left\n{self.mc_worker.log_tail()}"
                )
            time.sleep(interval)
        if execution.status != "succeeded":
            raise RuntimeError(f"execution {execution_id} ended {execution.status}: {execution.error}")
        return execution


def _git_head() -> str:
    """The commit the engine was at, with ``+dirty`` when the working tree had changes."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments
            [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(  # noqa: S603 - fixed arguments
            [git, "status", "--porcelain", "--", "executions", "mc_project", "workflows"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# --- manifests ------------------------------------------------------------------------------


def echo(task_id: str, needs: Iterable[str] = ()) -> dict[str, Any]:
    task: dict[str, Any] = {"id": task_id, "uses": "pkg:mc/echo@1", "with": {"message": task_id}}
    if needs:
        task["needs"] = list(needs)
    return task


def sleep(task_id: str, seconds: float, needs: Iterable[str] = ()) -> dict[str, Any]:
    task: dict[str, Any] = {"id": task_id, "uses": "pkg:mc/sleep@1", "with": {"seconds": seconds}}
    if needs:
        task["needs"] = list(needs)
    return task


def manifest(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "description": "engine benchmark", "tasks": tasks}


# --- small helpers --------------------------------------------------------------------------


def epoch(moment: datetime | None) -> float:
    """An aware datetime written by a worker, as time.time() seconds (same machine, same clock)."""
    if moment is None:
        raise ValueError("a timestamp the worker should have written is missing")
    return moment.timestamp()


def median_run(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run[key])
    return ordered[(len(ordered) - 1) // 2]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn``; return its result and the wall seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def describe(conditions: dict[str, Any]) -> str:
    """One line on the conditions of a run, printed under its figures."""
    start = ", ".join(f"{v:.2f}" for v in conditions["loadavg_at_start"])
    end = ", ".join(f"{v:.2f}" for v in conditions["loadavg_at_end"])
    return (
        f"\n{conditions['cores']} cores; load average {start} at start, {end} at end; "
        f"engine at {conditions['engine_commit']}"
    )
