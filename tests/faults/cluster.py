"""A private MC cluster for fault tests: its own PostgreSQL and Redis, and MC's processes as
production runs them (docs/operations.md): gunicorn with 4 workers, one Celery worker per
queue, one beat.

Nothing here touches the shared PostgreSQL (5432) or Redis (6379): the servers are this
harness's own processes (ports 55400-55499 and 56400-56499, data under a temporary
directory), so a test may stop, restart or cut them off. Every process runs in its own
process group and writes its output to a log file under the cluster's directory; the tails
go into assertion messages (``Cluster.report``).

MC runs with the shipped defaults (visibility timeout, beat schedule, retry backoff, ...):
only where the database, broker, result backend, cache and var directory are differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent

# One worker per queue, with the concurrency docs/operations.md gives each.
WORKER_QUEUES: dict[str, int] = {"small": 8, "medium": 4, "large": 1, "control": 4, "receipts": 2}
FINAL = ("succeeded", "failed", "cancelled")


def free_port(first: int, last: int, host: str = "127.0.0.1") -> int:
    """A TCP port in [first, last] nobody listens on (checked on ``host``)."""
    for port in range(first, last + 1):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def tail(path: Path, size: int = 3000) -> str:
    if not path.exists():
        return f"({path} missing)"
    data = path.read_bytes()[-size:].decode(errors="replace")
    return f"--- {path.name} (last {size} bytes) ---\n{data}"


def wait_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


@dataclass
class Process:
    """One long-running process in its own process group (optionally in a network namespace)."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    netns: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        argv = ["ip", "netns", "exec", self.netns, *self.argv] if self.netns else self.argv
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the group, then SIGKILL what is left."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a node or container dying would."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def wait_for_log(self, text: str, *, timeout: float, since: int = 0) -> None:
        def seen() -> bool:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited\n{self.tail()}")
            return text.encode() in self.log_path.read_bytes()[since:]

        try:
            wait_until(seen, timeout=timeout, what=f"{self.name}: {text!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.tail()}") from None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def tail(self, size: int = 3000) -> str:
        return tail(self.log_path, size)


class Postgres:
    """A private PostgreSQL server (initdb as the postgres user, pg_ctl to start and stop)."""

    def __init__(self, log_dir: Path, *, listen: Sequence[str] = ("127.0.0.1",)) -> None:
        self.port = free_port(55400, 55499)
        self.listen = list(listen)
        # The postgres user must reach its directory: not under pytest's 0700 tmp dir.
        self.dir = Path(tempfile.mkdtemp(prefix="mc-faults-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.log_path = self.dir / "postgres.log"
        self.log_copy = log_dir / "postgres.log"

    def _as_postgres(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=check, timeout=120
        )

    def init(self) -> None:
        self.socket_dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        shutil.chown(self.socket_dir, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\n"
                f"listen_addresses = '{','.join(self.listen)}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 300\nshared_buffers = 64MB\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.231.0.0/16 trust\n")  # the fault tests' namespaced hosts

    def _pg_ctl(self, *args: str) -> None:
        result = self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), *args)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.tail()}")

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "60", "start")

    def stop(self) -> None:
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")

    def restart(self) -> None:
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "restart")

    def url(self, host: str = "127.0.0.1", db: str = "mc") -> str:
        return f"postgres://postgres@{host}:{self.port}/{db}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(db="postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self._pg_ctl("-w", "-t", "30", "-m", "immediate", "stop")
        with contextlib.suppress(OSError):
            shutil.copyfile(self.log_path, self.log_copy)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, size: int = 3000) -> str:
        return tail(self.log_path, size)


class Redis:
    """A private redis-server with no persistence: a restart loses everything it held."""

    def __init__(self, log_dir: Path, *, bind: Sequence[str] = ("127.0.0.1",)) -> None:
        self.port = free_port(56400, 56499)
        self.bind = list(bind)
        self.dir = log_dir / "redis"
        self.dir.mkdir(exist_ok=True)
        self.process = Process("redis", [], log_dir / "redis.log")

    def start(self) -> None:
        self.process.argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            *self.bind,
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]
        self.process.env = dict(os.environ)
        self.process.start()
        wait_until(self.ping, timeout=20, what="redis-server to answer")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Gone, with everything it held (no persistence)."""
        self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, host: str = "127.0.0.1", db: int = 0) -> str:
        return f"redis://{host}:{self.port}/{db}"


@dataclass
class Outage:
    """What the API answered while a dependency was down: (seconds since start, endpoint, status)."""

    seen: list[tuple[float, str, int | str]] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # runs a POST created meanwhile: id -> tag
    bodies: list[str] = field(default_factory=list)  # the first bytes of every 5xx answer

    def statuses(self, endpoint: str | None = None) -> set[int | str]:
        return {status for _, name, status in self.seen if endpoint is None or name == endpoint}

    def summary(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for _, name, status in self.seen:
            counts.setdefault(name, {}).setdefault(str(status), 0)
            counts[name][str(status)] += 1
        return counts


class Cluster:
    """PostgreSQL, Redis and MC's processes, with the API driven over HTTP.

    ``bind`` lists the addresses PostgreSQL and Redis listen on (the namespace tests add the
    root-side veth addresses), ``host`` the one MC's processes use to reach them.
    """

    def __init__(
        self,
        root: Path,
        *,
        worker_concurrency: dict[str, int] | None = None,
        bind: Sequence[str] = ("127.0.0.1",),
        host: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.var = root / "var"
        self.effects = root / "effects.log"
        self.effects.touch()
        self.effects.chmod(0o666)
        self.concurrency = dict(WORKER_CONCURRENCY_DEFAULT if worker_concurrency is None else worker_concurrency)
        self.host = host
        self.pg = Postgres(self.logs, listen=bind)
        self.redis = Redis(self.logs, bind=bind)
        self.api_port = free_port(57400, 57499)
        self.secret_key = secrets.token_urlsafe(32)
        self.workers: dict[str, Process] = {}
        self.gunicorn: Process | None = None
        self.beat: Process | None = None
        self.token = ""
        self.http: httpx.Client | None = None
        self.workflows: dict[str, str] = {}

    # --- environment and processes --------------------------------------------------------

    def env(self, host: str | None = None) -> dict[str, str]:
        """MC's environment: private servers, shipped defaults for everything else."""
        host = host or self.host
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_", "PROMETHEUS_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="mc_project.settings",
            MC_ENV="development",
            MC_DEBUG="false",
            MC_SECRET_KEY=self.secret_key,
            MC_VAR_DIR=str(self.var),
            MC_DATABASE_URL=self.pg.url(host),
            MC_BROKER_URL=self.redis.url(host, 0),
            MC_RESULT_BACKEND=self.redis.url(host, 1),
            MC_CACHE_URL=self.redis.url(host, 2),
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def worker(self, queue: str, *, suffix: str = "", netns: str | None = None, host: str | None = None) -> Process:
        """A Celery worker for ``mc.<queue>`` (not started)."""
        name = f"{queue}{suffix}"
        return Process(
            f"worker-{name}",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "mc_project",
                "worker",
                "-Q",
                f"mc.{queue}",
                "-c",
                str(self.concurrency[queue]),
                "-n",
                f"{name}@%h",
                "-l",
                "INFO",
            ],
            self.logs / f"worker-{name}.log",
            env=self.env(host),
            netns=netns,
        )

    def start_worker(self, process: Process, *, timeout: float = 60) -> Process:
        since = process.log_size()
        process.start()
        process.wait_for_log(" ready.", timeout=timeout, since=since)
        return process

    def start(self, *, workers: bool = True) -> Cluster:
        self.pg.init()
        self.pg.start()
        self.pg.create_database("mc")
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0", timeout=300)
        self.manage("mc_keys", "generate")
        self.manage("mc_tenant", "create", "faults")
        self.manage("mc_user", "create", "--tenant", "faults", "--role", "admin", "chaos")
        self.token = self.manage("mc_token", "create", "chaos").strip().split()[-1]
        self.gunicorn = Process(
            "gunicorn",
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                "deploy/gunicorn.conf.py",
                "mc_project.wsgi",
                "--bind",
                f"127.0.0.1:{self.api_port}",
                "--workers",
                "4",
                "--access-logfile",
                "-",
            ],
            self.logs / "gunicorn.log",
            env=self.env("127.0.0.1"),
        ).start()
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Token {self.token}"},
            timeout=30,
        )
        wait_until(self._healthy_api, timeout=60, what="gunicorn /healthz")
        if workers:
            self.start_workers({queue: self.worker(queue) for queue in self.concurrency})
            self.start_beat()
        return self

    def start_workers(self, processes: dict[str, Process], *, timeout: float = 90) -> None:
        """Start workers side by side and wait until each is ready; ``self.workers`` gets them."""
        sizes = {key: process.log_size() for key, process in processes.items()}
        for key, process in processes.items():
            process.start()
            self.workers[key] = process
        for key, process in processes.items():
            process.wait_for_log(" ready.", timeout=timeout, since=sizes[key])

    def start_beat(self) -> None:
        self.beat = Process(
            "beat",
            [str(VENV_BIN / "celery"), "-A", "mc_project", "beat", "-l", "INFO", "-s", str(self.var / "beat-schedule")],
            self.logs / "beat.log",
            env=self.env("127.0.0.1"),
        ).start()

    def _healthy_api(self) -> bool:
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        processes = [*self.workers.values(), self.beat, self.gunicorn]
        for process in processes:
            if process is not None:
                process.signal_group(signal.SIGTERM)
        for process in processes:
            if process is not None:
                process.stop(timeout=10)
        self.redis.stop()
        self.pg.destroy()

    @property
    def api(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def processes(self) -> list[Process]:
        return [p for p in (self.gunicorn, self.beat, *self.workers.values()) if p is not None]

    def healthy(self) -> bool:
        """Every process alive and /readyz answering 200."""
        if not all(p.alive for p in self.processes()):
            return False
        try:
            return self.api.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def report(self, *extra: str) -> str:
        """Log tails of every process, for assertion messages."""
        parts = [*extra]
        parts += [p.tail(2500) for p in self.processes()]
        parts += [self.redis.process.tail(1000), self.pg.tail(1500)]
        return "\n".join(parts)

    # --- workflows and runs ---------------------------------------------------------------

    def publish(self, manifest: dict[str, Any]) -> str:
        response = self.api.post("/api/workflows", json={"manifest": manifest})
        assert response.status_code == 201, response.text
        workflow_id = response.json()["id"]
        response = self.api.post(f"/api/workflows/{workflow_id}/publish", json={})
        assert response.status_code == 201, response.text
        self.workflows[manifest["name"]] = workflow_id
        return workflow_id

    def start_runs(self, workflow: str, count: int, *, label: str, pause: float = 1.5) -> dict[str, str]:
        """Start ``count`` runs; returns execution id -> its tag (what its side effects carry)."""
        runs: dict[str, str] = {}
        for index in range(count):
            tag = f"{label}-{index}"
            response = self.api.post(
                "/api/executions", json={"workflow": workflow, "inputs": {"tag": tag, "pause": pause}}
            )
            assert response.status_code == 201, f"{response.status_code} {response.text}\n{self.report()}"
            runs[response.json()["id"]] = tag
        return runs

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.url(), autocommit=True, connect_timeout=5)

    def executions(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self.db() as conn:
            rows = conn.execute(
                "SELECT id::text, status, created_at, finished_at FROM executions_execution WHERE id = ANY(%s::uuid[])",
                (list(ids),),
            ).fetchall()
        return {row[0]: {"status": row[1], "created_at": row[2], "finished_at": row[3]} for row in rows}

    def steps(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        with self.db() as conn:
            rows = conn.execute(
                "SELECT execution_id::text, step_id, status, attempts, lost_attempts, worker FROM executions_steprun"
                " WHERE execution_id = ANY(%s::uuid[]) ORDER BY execution_id, sequence",
                (list(ids),),
            ).fetchall()
        keys = ("execution", "step_id", "status", "attempts", "lost_attempts", "worker")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def wait_finished(self, ids: Sequence[str], *, timeout: float) -> float:
        """Wait (polling the database) until every run is final; returns the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            with contextlib.suppress(psycopg.OperationalError):
                rows = self.executions(ids)
                if len(rows) == len(ids) and all(row["status"] in FINAL for row in rows.values()):
                    return time.monotonic() - started
            if time.monotonic() > deadline:
                return -1.0
            time.sleep(1)

    def effects_by_step(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for line in self.effects.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                counts[(parts[0], parts[1])] = counts.get((parts[0], parts[1]), 0) + 1
        return counts

    # --- watching the API during an outage -------------------------------------------------

    @contextlib.contextmanager
    def watch_api(self, endpoints: dict[str, tuple[str, str, float]]) -> Iterator[Outage]:
        """Poll ``endpoints`` ({label: (method, path, every_seconds)}) in a thread while the block
        runs. A POST starts a diamond run (what it created is kept in ``Outage.created``)."""
        import threading

        outage = Outage()
        stop = threading.Event()
        started = time.monotonic()
        client = httpx.Client(base_url=self.api.base_url, headers=dict(self.api.headers), timeout=20)
        due = dict.fromkeys(endpoints, 0.0)

        def poll() -> None:
            while not stop.is_set():
                for label, (method, path, every) in endpoints.items():
                    now = time.monotonic()
                    if now < due[label]:
                        continue
                    due[label] = now + every
                    tag = f"probe-{time.time_ns()}"
                    try:
                        if method == "POST":
                            response = client.post(path, json={"workflow": "faults-diamond", "inputs": {"tag": tag}})
                        else:
                            response = client.get(path)
                        status: int | str = response.status_code
                        if status == 201 and method == "POST":
                            outage.created[response.json()["id"]] = tag
                        elif status >= 500:
                            outage.bodies.append(f"{label} {status} {response.text[:300]}")
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    outage.seen.append((round(time.monotonic() - started, 1), label, status))
                stop.wait(0.2)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield outage
        finally:
            stop.set()
            thread.join(30)
            client.close()

    def wait_api_recovered(self, *, timeout: float = 60) -> float:
        """Seconds until /readyz and the run list answer 200 again (the API recovers by itself)."""
        started = time.monotonic()

        def ok() -> bool:
            try:
                return self.api.get("/readyz").status_code == 200 and self.api.get("/api/executions").status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ok, timeout=timeout, interval=0.5, what="the API to answer 200 again")
        except TimeoutError as exc:
            raise AssertionError(self.report(str(exc))) from None
        return time.monotonic() - started

    def wait_steps_running(self, ids: Sequence[str], count: int, *, timeout: float = 60) -> None:
        """Wait until at least ``count`` steps of these runs are running (faults hit mid-step)."""

        def running() -> bool:
            with self.db() as conn:
                row = conn.execute(
                    "SELECT count(*) FROM executions_steprun"
                    " WHERE execution_id = ANY(%s::uuid[]) AND status = 'running'",
                    (list(ids),),
                ).fetchone()
            return row is not None and row[0] >= count

        wait_until(running, timeout=timeout, interval=0.2, what=f"{count} steps running")


WORKER_CONCURRENCY_DEFAULT = WORKER_QUEUES


def diamond_manifest(effects: Path, *, name: str = "faults-diamond") -> dict[str, Any]:
    """Four shell steps, a -> (b, c) -> d; each appends "<tag> <step>" to ``effects`` when it
    starts, then sleeps ``inputs.pause`` seconds."""

    def task(step: str, needs: list[str]) -> dict[str, Any]:
        script = f'echo "${{{{ inputs.tag }}}} {step} $$" >> {effects}; sleep ${{{{ inputs.pause }}}}'
        spec: dict[str, Any] = {"id": step, "uses": "pkg:mc/shell@1", "with": {"argv": ["sh", "-c", script]}}
        if needs:
            spec["needs"] = needs
        return spec

    return {
        "name": name,
        "version": "1.0.0",
        "description": "Fault tests: four shell steps that count their side effects.",
        "inputs": {
            "tag": {"type": "string", "description": "Carried by every side effect of the run."},
            "pause": {"type": "number", "default": 1.5, "description": "Seconds each step sleeps."},
        },
        "tasks": [task("a", []), task("b", ["a"]), task("c", ["a"]), task("d", ["b", "c"])],
    }


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:4000]
