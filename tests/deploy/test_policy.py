"""deploy/policy: MC's own policy engine checks MC's own rendered manifests.

The pack (non-root, resources set, no ``latest`` image, probes present) is loaded and
evaluated by ``policy.engine`` exactly as MC's packs are: MC checks its deployment the way
the sprint plan's CI runs conftest.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from policy.engine import RegoEngine, load_bundle
from tests.deploy.conftest import DEPLOY, Manifests

BAD_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "bad"},
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "web", "image": "nginx:latest", "ports": [{"containerPort": 80}]}]}
        }
    },
}


@pytest.fixture(scope="module")
def engine() -> Iterator[RegoEngine]:
    engine = RegoEngine([load_bundle(DEPLOY / "policy", name="deploy")], timeout_s=10.0)
    yield engine
    engine.close()


def test_the_rendered_chart_passes_the_deploy_pack(engine: RegoEngine, rendered: Manifests) -> None:
    denied = {}
    for doc in rendered:
        decision = engine.evaluate("deploy", doc)
        if not decision.allowed or decision.warn:
            denied[f"{doc['kind']}/{doc['metadata']['name']}"] = decision.deny + decision.warn
    assert denied == {}


def test_a_bad_manifest_is_denied_with_an_explanation(engine: RegoEngine) -> None:
    decision = engine.evaluate("deploy", BAD_DEPLOYMENT)
    assert decision.result == "deny"
    codes = {item["code"] for item in decision.deny}
    assert codes == {
        "image_not_pinned",
        "runs_as_root",
        "privilege_escalation",
        "resources_missing",
        "liveness_probe_missing",
        "readiness_probe_missing",
    }
    image = next(item for item in decision.deny if item["code"] == "image_not_pinned")
    assert image["path"] == "/spec/template/spec/containers/0/image"
    assert "nginx:latest" in image["message"]


@pytest.mark.parametrize(
    ("image", "denied"),
    [
        ("nginx", True),
        ("nginx:latest", True),
        ("registry:5000/nginx", True),
        ("nginx:1.27", False),
        ("registry:5000/team/nginx@sha256:" + "0" * 64, False),
    ],
)
def test_images_must_be_pinned(engine: RegoEngine, rendered: Manifests, image: str, denied: bool) -> None:
    api = copy.deepcopy(
        next(doc for doc in rendered if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "mc-api")
    )
    api["spec"]["template"]["spec"]["containers"][0]["image"] = image
    codes = {item["code"] for item in engine.evaluate("deploy", api).deny}
    assert ("image_not_pinned" in codes) is denied


def test_a_worker_without_its_liveness_probe_is_denied(engine: RegoEngine, rendered: Manifests) -> None:
    worker = copy.deepcopy(
        next(doc for doc in rendered if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "mc-worker-small")
    )
    del worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    decision = engine.evaluate("deploy", worker)
    assert [item["code"] for item in decision.deny] == ["liveness_probe_missing"]
