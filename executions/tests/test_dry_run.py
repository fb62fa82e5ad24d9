"""A dry run plans and checks, and touches nothing: no step runs, no HTTP request, no artifact.

Each test first proves the same workflow, really run, does all three, so that the dry run's
silence means something.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from executions.choices import ExecutionStatus
from executions.models import Execution, StepRun
from executions.tests.conftest import wait_finished, workflow_doc
from mc_project.tenancy.choices import Role
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Sink(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[str]:
    Sink.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def artifact_files() -> set[Path]:
    root = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"])
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def side_effect_doc(url: str, marker: str) -> dict[str, Any]:
    nonce = uuid.uuid4().hex  # artifacts are content-addressed: new bytes make a new file
    return workflow_doc(
        f"effects-{marker}",
        [
            {
                "id": "notify",
                "uses": "pkg:mc/http@1",
                "with": {"url": f"{url}/hook/{marker}", "method": "POST", "json": {"m": marker}},
            },
            {
                "id": "store",
                "uses": "pkg:mc/storage-put@1",
                "with": {"content": f"report {marker} {nonce}"},
                "needs": ["notify"],
            },
            {
                "id": "say",
                "uses": "pkg:mc/echo@1",
                "with": {"message": marker},
                "needs": ["store"],
                "resource_class": "large",
            },
        ],
    )


def test_dry_run_runs_no_step_sends_no_request_and_writes_no_artifact(
    worker: WorkerProcess, publish: Any, make_client: Callable[..., APIClient], tenant: Any, sink: str
) -> None:
    client = make_client(Role.AUTHOR, tenant)
    # The control: a real run of a workflow like it does all three.
    real = publish(side_effect_doc(sink, "real"))
    before = artifact_files()
    response = client.post("/api/executions", {"workflow": str(real.workflow_id)}, format="json")
    execution = wait_finished(Execution.objects.get(pk=response.json()["id"]))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert Sink.hits == ["/hook/real"]
    assert len(artifact_files() - before) == 1

    dry = publish(side_effect_doc(sink, "dry"))
    before = artifact_files()
    response = client.post("/api/executions", {"workflow": str(dry.workflow_id), "mode": "dry_run"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["mode"] == "dry_run" and body["status"] == "planned"
    assert body["steps"] == []
    assert [step["id"] for step in body["plan"]["steps"]] == ["notify", "store", "say"]
    assert body["plan"]["side_effects"] == ["notify", "store"]
    decisions = {d["pack"]: d for d in body["plan"]["policy_decisions"]}
    assert sorted(decisions) == ["budget", "pii", "quotas", "residency"]
    assert all(d["result"] in ("allow", "warn") and not d["blocks"] for d in decisions.values())
    assert [w["code"] for w in decisions["residency"]["warn"]] == ["region_unset"]
    # Give a worker every chance to pick up anything that was (wrongly) sent.
    ping = client.post("/api/executions", {"workflow": str(real.workflow_id)}, format="json")
    wait_finished(Execution.objects.get(pk=ping.json()["id"]))
    assert not StepRun.objects.filter(execution_id=body["id"]).exists()
    assert Sink.hits == ["/hook/real", "/hook/real"]  # nothing for /hook/dry
    assert artifact_files() == before  # the second real run stored the same bytes: same digest, no new file
    assert "/hook/dry" not in worker.log_path.read_text(errors="replace")


def test_plan_endpoint_matches_the_dry_run_and_creates_nothing(
    publish: Any, make_client: Callable[..., APIClient], tenant: Any, sink: str, transactional_db: Any
) -> None:
    version = publish(side_effect_doc(sink, "plan"))
    client = make_client(Role.VIEWER, tenant)
    response = client.post(f"/api/workflows/{version.workflow_id}/versions/{version.version}/plan", {}, format="json")
    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["stages"] == [["notify"], ["store"], ["say"]]
    assert plan["critical_path"] == ["notify", "store", "say"]
    queues = {step["id"]: step["queue"] for step in plan["steps"]}
    assert queues == {"notify": "mc.small", "store": "mc.small", "say": "mc.large"}
    assert plan["estimated_usd"] == pytest.approx(sum(step["estimated_usd"] for step in plan["steps"]))
    assert plan["quota"]["large"]["steps"] == 1
    assert sorted(d["pack"] for d in plan["policy_decisions"]) == ["budget", "pii", "quotas", "residency"]
    assert all(d["revision"] and d["bundle_digest"].startswith("sha256:") for d in plan["policy_decisions"])
    assert plan["snapshot"] == f"sha256:{version.digest}"
    assert Execution.objects.count() == 0 and StepRun.objects.count() == 0
    assert Sink.hits == []
