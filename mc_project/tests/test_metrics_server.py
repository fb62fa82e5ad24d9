"""mc_project.metrics_server: a worker pod's sidecar serves what the worker's processes counted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.workers import wait_until

COUNT = """
from prometheus_client import Counter
Counter("mc_sidecar_probe_total", "a probe", ["pack"]).labels(pack="sidecar").inc(3)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_sidecar_serves_the_counts_of_other_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", COUNT], env=env, check=True, timeout=60)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mc_project.metrics_server", "--port", str(port), "--address", "127.0.0.1"], env=env
    )
    try:

        def scraped() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    return response.read().decode()
            except OSError:
                return None

        text = wait_until(scraped, timeout=20)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert samples[("mc_sidecar_probe_total", (("pack", "sidecar"),))] == 3
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_the_sidecar_needs_the_directory() -> None:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "mc_project.metrics_server", "--port", "0"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR must name the directory" in result.stderr
