"""The embedded default end to end: what `make demo` does, in fresh processes with no services."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from workflows.models import WorkflowVersion

EXAMPLE_STEPS = ("greet", "shout", "wait", "report")

FAILING = """\
name: broken-demo
version: 1.0.0
tasks:
  - id: start
    uses: pkg:mc/echo@1
    with: {message: starting}
  - id: boom
    uses: pkg:mc/fail@1
    needs: [start]
    with: {message: broken on purpose}
  - id: never
    uses: pkg:mc/echo@1
    needs: [boom]
    with: {message: unreachable}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_env(var_dir: Path) -> dict[str, str]:
    """The caller's environment without any MC_* or DJANGO_* variable: the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "DJANGO_"))}
    env["MC_VAR_DIR"] = str(var_dir)
    return env


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, output: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; output:\n{output()}")
        time.sleep(0.1)
    return value


def stop(process: subprocess.Popen[Any], timeout: float = 40) -> None:
    """SIGTERM, so mc_up stops its own children too; SIGKILL only if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def step_lines(out: str, execution: str = "") -> dict[str, str]:
    """Step id -> status of every step line printed (for one execution when given its short id)."""
    pattern = rf"^\[{execution or '[0-9a-f]{8}'}\]   (\S+)\s+(\w+)\s+(?:[\d.]+|-) s"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, out, re.MULTILINE)}


@pytest.mark.slow
def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir)
    manage = [sys.executable, "manage.py"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*manage, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
        )
        assert not check or done.returncode == 0, done.stdout + done.stderr
        return done

    migrated = run("migrate", "--noinput", "-v", "0")
    assert "W040" not in migrated.stdout + migrated.stderr  # no avoidable warnings (issue 13)
    out = run("mc_demo", "--url", base).stdout
    token = re.search(r"API token\s+(mc_\S+)", out)
    assert token, out
    assert "hello-world@1.0.0" in out
    assert (var_dir / "mc.sqlite3").exists()
    again = run("mc_demo", "--url", base).stdout  # idempotent: same token, no new version
    assert token.group(1) in again and "hello-world@1.0.0" in again

    # make demo's last command: server + worker, the example run printed step by step, then serving.
    log = tmp_path / "mc_up.out"
    with log.open("w") as sink:
        up = subprocess.Popen(
            [*manage, "mc_up", "--url", base], cwd=settings.BASE_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    output = log.read_text
    try:
        wait_for(lambda: "Serving on" in output() or up.poll() is not None, timeout=60, what="mc_up", output=output)
        assert up.poll() is None, output()
        first = re.search(r"^\[([0-9a-f]{8})\] hello-world@1\.0\.0 succeeded in", output(), re.MULTILINE)
        assert first, output()
        assert step_lines(output(), first.group(1)) == dict.fromkeys(EXAMPLE_STEPS, "succeeded"), output()
        assert 'message="hello, world! (after a 1 s pause)"' in output()

        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        headers = {"Authorization": f"Token {token.group(1)}"}
        workflows = httpx.get(f"{base}/api/workflows", headers=headers).json()
        assert [(w["name"], w["latest_version"]) for w in workflows["results"]] == [("hello-world", "1.0.0")]
        assert httpx.get(f"{base}/admin/login/").status_code == 200
        assert httpx.get(f"{base}/api/docs/").status_code == 200
        assert httpx.get(f"{base}/api/schema/").status_code == 200

        # A run started through the API while the demo runs is executed, and printed.
        started = httpx.post(
            f"{base}/api/executions",
            headers=headers,
            json={"workflow": "hello-world", "inputs": {"name": "api", "pause": 0}},
        )
        assert started.status_code == 201, started.text
        execution = started.json()["id"]

        def progress() -> Any:
            body = httpx.get(f"{base}/api/executions/{execution}/progress", headers=headers).json()
            return body if body["terminal"] else None

        assert wait_for(progress, timeout=30, what="the API run", output=output)["status"] == "succeeded"
        steps = httpx.get(f"{base}/api/executions/{execution}/steps", headers=headers).json()["results"]
        report = next(step for step in steps if step["id"] == "report")
        assert report["outputs"] == {"message": "hello, api! (after a 0 s pause)"}
        wait_for(
            lambda: f"[{execution[:8]}] hello-world@1.0.0 succeeded" in output(), timeout=5, what="print", output=output
        )
        assert step_lines(output(), execution[:8]) == dict.fromkeys(EXAMPLE_STEPS, "succeeded")

        # Ctrl-C stops the server and the worker, and exits 0.
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=40) == 0, output()
    finally:
        stop(up)
    assert "Stopped." in output()
    for avoidable in ("W040", "No hostname was supplied"):
        assert avoidable not in output(), avoidable
    assert "Warm shutdown" in (var_dir / "log" / "worker.log").read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/healthz", timeout=2)

    # --once on a failing workflow: the failed and skipped steps are printed, the exit code is 1.
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(FAILING)
    run("mc_demo", "--manifest", str(manifest))
    done = run("mc_up", "--once", "--no-server", "--workflow", "broken-demo", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert step_lines(done.stdout) == {"start": "succeeded", "boom": "failed", "never": "skipped"}, done.stdout
    assert "error: broken on purpose" in done.stdout
    assert "broken-demo@1.0.0 failed" in done.stdout
    assert "Stopped." in done.stdout


@pytest.mark.django_db
def test_demo_command_on_postgres_publishes_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("mc_demo")
    call_command("mc_demo")
    versions = WorkflowVersion.objects.filter(workflow__name="hello-world")
    assert [v.version for v in versions] == ["1.0.0"]
    assert "Login" in capsys.readouterr().out
