"""Real Celery worker processes for tests, on the test database and the test Redis.

A ``WorkerProcess`` runs ``celery -A mc_project worker`` in its own process group, so a
test can SIGKILL the whole worker (or only the pool process running a step) and start
another one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "mc.small,mc.medium,mc.large,mc.control,mc.receipts"

# Short backoff so retry tests take seconds, not minutes.
TEST_WORKER_ENV = {
    "MC_RETRY_BACKOFF_BASE": "0.3",
    "MC_RETRY_BACKOFF_FACTOR": "2",
    "MC_RETRY_BACKOFF_CAP": "5",
    "MC_STEP_TIMEOUT_GRACE": "2",
    "MC_LOG_LEVEL": "INFO",
    "MC_HTTP_ALLOWED_HOSTS": "127.0.0.1",
    "MC_PYTHON_ALLOWED_MODULES": "executions.packages.samples,executions.tests.stubborn",
}


def database_url() -> str:
    """The URL of the database pytest-django created for this run (``test_<name>``)."""
    conf = connection.settings_dict
    user = conf.get("USER") or "postgres"
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{conf['NAME']}"


class WorkerProcess:
    """One ``celery worker`` subprocess; its log goes to a file the test can read."""

    def __init__(
        self,
        log_dir: Path,
        *,
        name: str,
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        queues: str = QUEUES,
    ) -> None:
        self.queues = queues
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.concurrency = concurrency
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mc_project.test_settings",
            "MC_DATABASE_URL": database_url(),
            **TEST_WORKER_ENV,
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mc_project",
                "worker",
                "-Q",
                self.queues,
                "-c",
                str(self.concurrency),
                "-P",
                "prefork",
                "-n",
                f"{self.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "-E",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, size: int = 6000) -> str:
        return self.log_path.read_bytes()[-size:].decode(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """Pids of the pool processes (children of the worker's main process)."""
        assert self.process is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the worker and its pool: nothing is acknowledged or cleaned up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class BeatProcess:
    """``celery beat``: sends the periodic tasks (recovery every ``MC_RECOVERY_INTERVAL``) as in production."""

    def __init__(self, log_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.log_path = log_dir / "beat.log"
        self.schedule = log_dir / "beat-schedule"
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BeatProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mc_project.test_settings",
            "MC_DATABASE_URL": database_url(),
            **TEST_WORKER_ENV,
            **self.extra_env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mc_project", "beat", "-s", str(self.schedule), "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def purge_queues(app: Any, queues: Iterable[str] = QUEUES.split(",")) -> None:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in queues:
            channel.queue_purge(queue)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.05, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
