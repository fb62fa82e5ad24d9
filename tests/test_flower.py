"""Flower, as `make flower` starts it, sees the demo's worker and its step tasks on the embedded default."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.test_demo import EXAMPLE_STEPS, embedded_env, free_port, stop, wait_for

AUTH = ("demo", "maestro-demo")


@pytest.mark.slow
def test_flower_shows_the_demo_worker_and_its_tasks(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "var")
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput", "-v", "0"], ["mc_demo"]):
        subprocess.run([*manage, *command], cwd=settings.BASE_DIR, env=env, check=True, capture_output=True, timeout=60)

    port = free_port()
    flower_log = tmp_path / "flower.log"
    up_log = tmp_path / "mc_up.log"
    with flower_log.open("w") as sink:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mc_project", "flower", "--address=127.0.0.1", f"--port={port}",
             f"--basic-auth={AUTH[0]}:{AUTH[1]}"],
            cwd=settings.BASE_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    up: subprocess.Popen[Any] | None = None
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", auth=AUTH, timeout=10)

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in (flower_log, up_log) if p.exists())

    def flower_listening() -> bool:
        try:
            return api.get("/workers").status_code in (200, 401) and "Connected to" in flower_log.read_text()
        except httpx.TransportError:
            return False

    try:
        wait_for(flower_listening, timeout=20, what="Flower", output=logs)
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers").status_code == 401  # the API needs the login
        with up_log.open("w") as sink:  # the demo's worker, and the example run
            up = subprocess.Popen(
                [*manage, "mc_up", "--no-server"],
                cwd=settings.BASE_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(lambda: "hello-world@1.0.0 succeeded" in up_log.read_text(), timeout=30, what="the run", output=logs)

        worker = f"mc-up@{socket.gethostname()}"
        workers = wait_for(
            lambda: worker in (body := api.get("/workers", params={"refresh": "true"}).json()) and body,
            timeout=15, what=f"{worker} in /api/workers", output=logs,
        )  # fmt: skip
        queues = {queue["name"] for queue in workers[worker]["active_queues"]}
        assert queues == {"mc.small", "mc.medium", "mc.large", "mc.control", "mc.receipts"}

        def step_tasks() -> list[dict[str, Any]]:
            tasks = api.get("/tasks", params={"taskname": "executions.run_step"}).json().values()
            done = [t for t in tasks if t["state"] == "SUCCESS" and t["worker"] == worker]
            return done if len(done) >= len(EXAMPLE_STEPS) else []

        tasks = wait_for(step_tasks, timeout=15, what="the run's tasks in /api/tasks", output=logs)
        assert all(task["uuid"].startswith("mc-step-") for task in tasks)
    finally:
        api.close()
        if up is not None:
            stop(up)
        stop(flower)
