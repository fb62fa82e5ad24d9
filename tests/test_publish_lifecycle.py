"""The draft → published lifecycle through the HTTP API: create, edit, publish, semver rules."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from receipts.models import Receipt
from tests.factories import manifest
from workflows.manifest import canonical_json
from workflows.models import WorkflowVersion

pytestmark = pytest.mark.django_db


def create(client: APIClient, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/api/workflows", {"manifest": doc or manifest()}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def publish(client: APIClient, wf_id: str, status: int = 201, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/workflows/{wf_id}/publish", body, format="json")
    assert response.status_code == status, response.json()
    return response.json()


def put_draft(client: APIClient, wf_id: str, doc: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.put(f"/api/workflows/{wf_id}/draft", {"manifest": doc}, format="json")
    assert response.status_code == status, response.json()
    return response.json()


def test_create_returns_workflow_with_draft(author: APIClient) -> None:
    body = create(author)
    assert body["name"] == "hello-world"
    assert body["has_draft"] is True
    assert body["latest_version"] is None
    draft = author.get(f"/api/workflows/{body['id']}/draft").json()
    assert draft["state"] == "draft" and draft["version"] is None
    assert draft["manifest"]["tasks"][0]["id"] == "fetch"


def test_create_accepts_yaml_body(author: APIClient) -> None:
    text = yaml.safe_dump(manifest(name="from-yaml"))
    response = author.generic("POST", "/api/workflows", text, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "from-yaml"


def test_create_accepts_manifest_as_text_field(author: APIClient) -> None:
    response = author.post("/api/workflows", {"manifest": yaml.safe_dump(manifest(name="text-field"))}, format="json")
    assert response.status_code == 201, response.json()


def test_create_same_name_twice_is_409(author: APIClient) -> None:
    create(author)
    response = author.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "workflow_exists"


def test_invalid_manifest_reports_every_problem_with_paths(author: APIClient) -> None:
    doc = manifest()
    doc["tasks"][1]["needs"] = ["nope"]
    doc["tasks"][2]["retries"] = 11
    response = author.post("/api/workflows", {"manifest": doc}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "manifest_invalid"
    paths = {d["path"] for d in error["details"]}
    assert {"/tasks/1/needs/0", "/tasks/2/retries"} <= paths
    assert not WorkflowVersion.objects.exists()


def test_unknown_request_field_is_rejected(author: APIClient) -> None:
    response = author.post("/api/workflows", {"manifest": manifest(), "colour": "red"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"path": "/colour", "message": "unknown field 'colour'"}]


def test_draft_update_is_validated_and_keeps_the_old_draft_on_error(author: APIClient) -> None:
    wf = create(author)
    changed = manifest(description="second draft")
    put_draft(author, wf["id"], changed)
    broken = manifest()
    broken["tasks"].append({"id": "fetch", "uses": "pkg:mc/echo@1"})
    response = author.put(f"/api/workflows/{wf['id']}/draft", {"manifest": broken}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "/tasks/4/id"
    stored = author.get(f"/api/workflows/{wf['id']}/draft").json()["manifest"]
    assert stored["description"] == "second draft"


def test_draft_cannot_rename_the_workflow(author: APIClient) -> None:
    wf = create(author)
    body = put_draft(author, wf["id"], manifest(name="renamed"), status=400)
    assert body["error"]["details"][0]["path"] == "/name"


def test_first_publish_takes_manifest_version_then_bumps(publisher: APIClient) -> None:
    wf = create(publisher, manifest(version="0.3.0"))
    first = publish(publisher, wf["id"])
    assert first["version"]["version"] == "0.3.0"
    expected = {"patch": "0.3.1", "minor": "0.4.0", "major": "1.0.0"}
    for bump, number in expected.items():
        put_draft(publisher, wf["id"], manifest(version="0.3.0", description=bump))
        assert publish(publisher, wf["id"], bump=bump)["version"]["version"] == number
    listing = publisher.get(f"/api/workflows/{wf['id']}/versions").json()
    assert [v["version"] for v in listing["results"]] == ["1.0.0", "0.4.0", "0.3.1", "0.3.0"]
    assert publisher.get(f"/api/workflows/{wf['id']}").json()["latest_version"] == "1.0.0"


def test_publish_without_body_bumps_patch(publisher: APIClient) -> None:
    wf = create(publisher)
    publish(publisher, wf["id"])
    put_draft(publisher, wf["id"], manifest(description="next"))
    response = publisher.post(f"/api/workflows/{wf['id']}/publish")
    assert response.status_code == 201
    assert response.json()["version"]["version"] == "1.0.1"


def test_explicit_version_must_be_greater(publisher: APIClient) -> None:
    wf = create(publisher)
    publish(publisher, wf["id"], version="2.0.0")
    put_draft(publisher, wf["id"], manifest(description="next"))
    for lower in ("2.0.0", "1.9.9", "2.0.0-rc.1"):
        error = publish(publisher, wf["id"], status=409, version=lower)["error"]
        assert error["code"] == "version_not_greater"
        assert error["details"][0]["path"] == "/version"
    assert publish(publisher, wf["id"], version="2.1.0-rc.1")["version"]["version"] == "2.1.0-rc.1"
    put_draft(publisher, wf["id"], manifest(description="final"))
    assert publish(publisher, wf["id"])["version"]["version"] == "2.1.0"  # patch of a prerelease finalises it


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"version": "banana"}, "/version"),
        ({"bump": "huge"}, "/bump"),
        ({"bump": "minor", "version": "3.0.0"}, "/version"),
        ({"force": True}, "/force"),
    ],
)
def test_bad_publish_requests_are_400(publisher: APIClient, body: dict[str, Any], path: str) -> None:
    wf = create(publisher)
    error = publish(publisher, wf["id"], status=400, **body)["error"]
    assert path in [d["path"] for d in error["details"]]
    assert WorkflowVersion.objects.get().state == "draft"


def test_publish_without_draft_is_409(publisher: APIClient) -> None:
    wf = create(publisher)
    publish(publisher, wf["id"])
    assert publish(publisher, wf["id"], status=409)["error"]["code"] == "no_draft"


def test_publish_freezes_canonical_bytes_addressed_by_sha256(publisher: APIClient) -> None:
    wf = create(publisher)
    version = publish(publisher, wf["id"])["version"]
    digest = version["digest"]
    assert digest.startswith("sha256:")
    response = publisher.get(f"/api/snapshots/{digest}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert hashlib.sha256(response.content).hexdigest() == digest.removeprefix("sha256:")
    assert response.content == canonical_json(json.loads(response.content))
    assert json.loads(response.content)["version"] == "1.0.0"
    missing = "sha256:" + "0" * 64
    assert publisher.get(f"/api/snapshots/{missing}").status_code == 404
    assert publisher.get("/api/snapshots/sha256:XYZ").status_code == 404


def test_publish_writes_a_provenance_record(publisher: APIClient) -> None:
    wf = create(publisher)
    body = publish(publisher, wf["id"])
    receipt = Receipt.objects.get(pk=body["receipt_id"])
    assert receipt.kind == "publish"
    assert receipt.subject_digest == body["version"]["digest"]
    assert receipt.actor == publisher.user  # type: ignore[attr-defined]
    shown = publisher.get(f"/api/receipts/{receipt.pk}").json()
    assert shown["record"]["snapshot"] == body["version"]["digest"]
    assert shown["record"]["actor"] == publisher.user.username  # type: ignore[attr-defined]
    assert shown["signed"] is False


def test_published_version_writes_answer_409(publisher: APIClient) -> None:
    wf = create(publisher)
    publish(publisher, wf["id"])
    url = f"/api/workflows/{wf['id']}/versions/1.0.0"
    before = publisher.get(url).json()
    for method in ("put", "patch", "delete"):
        response = getattr(publisher, method)(url, {"manifest": manifest(description="x")}, format="json")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "version_immutable"
    assert publisher.get(url).json() == before


def test_discard_draft(author: APIClient) -> None:
    wf = create(author)
    assert author.delete(f"/api/workflows/{wf['id']}/draft").status_code == 204
    assert author.get(f"/api/workflows/{wf['id']}/draft").status_code == 404
    assert author.delete(f"/api/workflows/{wf['id']}/draft").json()["error"]["code"] == "no_draft"


def test_list_is_paginated_and_filterable(publisher: APIClient) -> None:
    for index in range(7):
        create(publisher, manifest(name=f"flow-{index}"))
    publish(publisher, create(publisher, manifest(name="shipped"))["id"])
    page = publisher.get("/api/workflows?page_size=3").json()
    assert page["count"] == 8 and len(page["results"]) == 3 and page["next"]
    assert [w["name"] for w in publisher.get("/api/workflows?name=flow-2").json()["results"]] == ["flow-2"]
    assert publisher.get("/api/workflows?search=FLOW").json()["count"] == 7
    published = publisher.get("/api/workflows?state=published").json()["results"]
    assert [w["name"] for w in published] == ["shipped"]
    assert publisher.get("/api/workflows?state=draft").json()["count"] == 7
    assert publisher.get("/api/workflows?state=bogus").status_code == 400
    assert publisher.get("/api/workflows?page=99").status_code == 404


def test_validate_endpoint_reports_without_saving(author: APIClient) -> None:
    bad = manifest()
    bad["tasks"][0]["needs"] = ["fetch"]
    body = author.post("/api/manifests/validate", {"manifest": bad}, format="json").json()
    assert body["valid"] is False
    assert body["problems"][0]["path"] == "/tasks/0/needs/0"
    good = author.post("/api/manifests/validate", {"manifest": manifest()}, format="json").json()
    assert good == {"valid": True, "problems": [], "digest": good["digest"]}
    assert not WorkflowVersion.objects.exists()


def test_schema_is_served_publicly_as_in_the_repository() -> None:
    from django.conf import settings

    response = APIClient().get("/api/schemas/manifest.v1.json")
    assert response.status_code == 200
    path = settings.BASE_DIR / "workflows" / "manifest" / "schema" / "manifest.v1.json"
    assert response.content == path.read_bytes()
    assert json.loads(response.content)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
