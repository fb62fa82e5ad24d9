"""The embedded default end to end: what `make demo` does, in a fresh process with no services."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from workflows.models import WorkflowVersion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    env["MC_VAR_DIR"] = str(tmp_path / "var")
    manage = [sys.executable, "manage.py"]
    port = free_port()

    def run(*args: str) -> str:
        done = subprocess.run(
            [*manage, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("migrate", "--noinput", "-v", "0")
    out = run("mc_demo", "--url", f"http://127.0.0.1:{port}")
    token = re.search(r"API token\s+(mc_\S+)", out)
    assert token, out
    assert "hello-world@1.0.0" in out
    assert (tmp_path / "var" / "mc.sqlite3").exists()
    again = run("mc_demo", "--url", f"http://127.0.0.1:{port}")  # idempotent: same token, no new version
    assert token.group(1) in again and "hello-world@1.0.0" in again

    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready.status_code == 200, ready.text
        headers = {"Authorization": f"Token {token.group(1)}"}
        workflows = httpx.get(f"{base}/api/workflows", headers=headers).json()
        assert [(w["name"], w["latest_version"]) for w in workflows["results"]] == [("hello-world", "1.0.0")]
        assert httpx.get(f"{base}/admin/login/").status_code == 200
        assert httpx.get(f"{base}/api/docs/").status_code == 200
        assert httpx.get(f"{base}/api/schema/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.django_db
def test_demo_command_on_postgres_publishes_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("mc_demo")
    call_command("mc_demo")
    versions = WorkflowVersion.objects.filter(workflow__name="hello-world")
    assert [v.version for v in versions] == ["1.0.0"]
    assert "Login" in capsys.readouterr().out
