"""/metrics: MC's own series, summed over every process that counts into the metrics directory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mc_project.metrics import decisions_counted
from policy.choices import DecisionStage, PolicyMode
from policy.models import PolicyDecision

CHILD = """
import os, sys, django
django.setup()
from mc_project.metrics import decisions_counted
from policy.models import PolicyDecision
decisions_counted([PolicyDecision(pack=sys.argv[1], stage="execute", result="deny", mode="enforce")] * 3)
print(os.getpid())
"""

WORKER_PROCESS = """
import os, sys, django
django.setup()
from celery.signals import worker_process_shutdown
from prometheus_client import Gauge
Gauge(sys.argv[1], "steps running in this process", multiprocess_mode="livesum").set(1)
print(os.getpid())
if sys.argv[2] == "exit":
    worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
"""


def run_child(code: str, *args: str) -> int:
    """Run ``code`` in a new MC process counting into this run's directory; its pid."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mc_project.test_settings"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def scrape(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``GET /metrics``, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")  # the text exposition format
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def decisions(pack: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return "mc_policy_decisions_total", frozenset({"pack": pack, **labels}.items())


@pytest.fixture
def pack() -> str:
    """A pack name no other test counts under (the directory is shared by the whole run)."""
    return f"pack-{uuid.uuid4().hex[:12]}"


def test_metrics_shows_the_policy_decisions_counted(client: Client, pack: str) -> None:
    denied = PolicyDecision(pack=pack, stage=DecisionStage.EXECUTE, result="deny", mode=PolicyMode.ENFORCE)
    allowed = PolicyDecision(pack=pack, stage=DecisionStage.PUBLISH, result="allow", mode=PolicyMode.ADVISORY)

    decisions_counted([denied, denied, allowed])

    samples = scrape(client)
    assert samples[decisions(pack, stage="execute", result="deny", mode="enforce")] == 2
    assert samples[decisions(pack, stage="publish", result="allow", mode="advisory")] == 1


def test_metrics_sums_what_other_processes_counted(client: Client, pack: str) -> None:
    decisions_counted([PolicyDecision(pack=pack, stage="execute", result="deny", mode="enforce")])

    child = run_child(CHILD, pack)

    assert child != os.getpid()
    assert (Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) / f"counter_{child}.db").exists()
    assert scrape(client)[decisions(pack, stage="execute", result="deny", mode="enforce")] == 1 + 3


def test_an_exited_worker_process_leaves_no_live_gauge_behind(client: Client) -> None:
    name = f"mc_test_running_{uuid.uuid4().hex[:12]}"

    run_child(WORKER_PROCESS, f"{name}_crashed", "crash")  # exits without Celery's shutdown signal
    run_child(WORKER_PROCESS, f"{name}_exited", "exit")

    samples = scrape(client)
    assert samples[(f"{name}_crashed", frozenset())] == 1  # stale until the directory is emptied
    assert (f"{name}_exited", frozenset()) not in samples


def test_the_metrics_directory_defaults_to_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mc_project.env import read_environment

    monkeypatch.setenv("MC_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert read_environment().metrics_dir == tmp_path / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "shared"))
    assert read_environment().metrics_dir == tmp_path / "shared"


def test_a_fresh_start_removes_only_the_files_of_dead_processes(tmp_path: Path) -> None:
    from mc_project.metrics import dead_process_files_remove

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for name in (f"counter_{dead_pid}.db", f"gauge_livesum_{dead_pid}.db", f"counter_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    assert dead_process_files_remove(tmp_path) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"counter_{os.getpid()}.db"]
