"""Every failure answers in the one error shape, with the right status, and writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from rest_framework.test import APIClient

from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from receipts.models import Receipt
from tests.asserts import assert_error
from tests.factories import manifest
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db

JSON = "application/json"
YAML = "application/yaml"


def stored() -> dict[str, Any]:
    """Every workflow, version and receipt row, to show a failed request wrote nothing."""
    return {
        "workflows": list(Workflow.objects.order_by("id").values("id", "name", "description", "updated_at")),
        "versions": list(
            WorkflowVersion.objects.order_by("id").values("id", "state", "version", "manifest", "updated_at")
        ),
        "receipts": Receipt.objects.count(),
    }


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def manifest_json(**changes: Any) -> str:
    return json.dumps({"manifest": manifest(**changes)})


def with_message(message: Any, name: str = "with-message") -> dict[str, Any]:
    doc = manifest(name=name)
    doc["tasks"][0]["with"] = {"message": message}
    return doc


# "Billion laughs": nine levels of nine aliases, 9**10 strings once expanded.
ALIAS_BOMB = "\n".join(
    ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
)


@dataclass(frozen=True)
class Bad:
    """One request that must fail: sent by ``role`` (None: anonymous) to ``path`` (``{workflow}`` is filled in)."""

    method: str
    path: str
    body: str | bytes | None
    status: int
    code: str
    content_type: str = JSON
    role: str | None = Role.AUTHOR
    extra: dict[str, str] = field(default_factory=dict)


def case(case_id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Bad(*args, **kwargs), id=case_id)


WF = "/api/workflows"
ONE = "/api/workflows/{workflow}"
DRAFT = "/api/workflows/{workflow}/draft"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
NUL = "nul \u0000 byte"
FORM = "application/x-www-form-urlencoded"

# One row per request that must fail. A new case is one line.
BAD_REQUESTS = [
    # 400: bodies that are not one well-formed, unambiguous JSON or YAML document
    case("400-truncated-json", "POST", WF, '{"manifest": ', 400, "parse_error"),
    case("400-single-quotes", "POST", WF, "{'manifest': {}}", 400, "parse_error"),
    case("400-duplicate-keys", "POST", WF, '{"manifest": {}, "manifest": {}}', 400, "parse_error"),
    case("400-nan", "POST", WF, '{"manifest": NaN}', 400, "parse_error"),
    case("400-infinity", "POST", WF, '{"manifest": -Infinity}', 400, "parse_error"),
    case("400-100k-open-brackets", "POST", WF, "[" * 100_000, 400, "parse_error"),
    case("400-100k-nested-arrays", "POST", WF, nested(100_000), 400, "parse_error"),
    case("400-50k-nested-objects", "POST", WF, '{"a":' * 50_000 + "1" + "}" * 50_000, 400, "parse_error"),
    case("400-not-utf8-json", "POST", WF, b'{"manifest": "\xff\xfe"}', 400, "parse_error"),
    case("400-not-utf8-yaml", "POST", WF, b"name: \xff\xfe\n", 400, "manifest_syntax", content_type=YAML),
    case("400-yaml-alias-bomb", "POST", WF, ALIAS_BOMB, 400, "manifest_syntax", content_type=YAML),
    case("400-yaml-alias-bomb-in-text-field", "POST", WF, json.dumps({"manifest": ALIAS_BOMB}), 400, "manifest_syntax"),
    case("400-yaml-deep-nesting", "POST", WF, nested(100_000), 400, "manifest_syntax", content_type=YAML),
    case("400-yaml-recursive-alias", "POST", WF, "a: &a [*a]\n", 400, "manifest_syntax", content_type=YAML),
    case("400-yaml-duplicate-keys", "POST", WF, "name: a\nname: b\n", 400, "manifest_syntax", content_type=YAML),
    case(
        "400-yaml-python-tag",
        "POST",
        WF,
        "!!python/object/apply:os.system ['true']\n",
        400,
        "manifest_syntax",
        content_type=YAML,
    ),
    case("400-yaml-two-documents", "POST", WF, "a: 1\n---\nb: 2\n", 400, "manifest_syntax", content_type=YAML),
    # 400: well-formed, but not a request object or not a manifest object
    case("400-empty-json-body", "POST", WF, "", 400, "validation_failed"),
    case("400-body-is-a-list", "POST", WF, "[1, 2]", 400, "validation_failed"),
    case("400-body-is-a-string", "POST", WF, '"text"', 400, "validation_failed"),
    case("400-manifest-missing", "POST", WF, "{}", 400, "validation_failed"),
    case("400-manifest-is-null", "POST", WF, '{"manifest": null}', 400, "validation_failed"),
    case("400-manifest-is-a-list", "POST", WF, '{"manifest": [1, 2]}', 400, "manifest_invalid"),
    case("400-manifest-is-a-number", "POST", WF, '{"manifest": 42}', 400, "manifest_invalid"),
    case("400-manifest-is-plain-text", "POST", WF, '{"manifest": "just words"}', 400, "manifest_invalid"),
    case("400-yaml-manifest-is-a-list", "POST", WF, "- a\n- b\n", 400, "manifest_invalid", content_type=YAML),
    case("400-draft-manifest-is-a-list", "PUT", DRAFT, '{"manifest": [1]}', 400, "manifest_invalid"),
    case(
        "400-manifest-nested-500-deep",
        "POST",
        WF,
        json.dumps({"manifest": with_message(json.loads(nested(500)))}),
        400,
        "manifest_invalid",
    ),
    # 400: a NUL character: PostgreSQL can store it neither in text nor in jsonb, so it must be refused up front
    case(
        "400-manifest-with-nul-character",
        "POST",
        WF,
        manifest_json(name="nul-text", description=NUL),
        400,
        "manifest_invalid",
    ),
    case(
        "400-task-argument-with-nul-character",
        "POST",
        WF,
        json.dumps({"manifest": with_message(NUL)}),
        400,
        "manifest_invalid",
    ),
    case(
        "400-key-with-nul-character",
        "POST",
        WF,
        json.dumps({"manifest": with_message({"k\u0000": 1})}),
        400,
        "manifest_invalid",
    ),
    case(
        "400-yaml-escape-for-nul-character",
        "POST",
        WF,
        yaml.safe_dump(manifest(name="yaml-nul", description=NUL)),
        400,
        "manifest_invalid",
        content_type=YAML,
    ),
    case("400-draft-with-nul-character", "PUT", DRAFT, manifest_json(description=NUL), 400, "manifest_invalid"),
    case("400-description-with-nul", "PATCH", ONE, json.dumps({"description": NUL}), 400, "validation_failed"),
    case("400-nul-in-filter", "GET", WF + "?name=%00", None, 400, "validation_failed"),
    case("400-bad-filter", "GET", WF + "?state=bogus", None, 400, "validation_failed"),
    case("400-content-length-not-a-number", "POST", WF, "{}", 400, "bad_request", extra={"CONTENT_LENGTH": "lots"}),
    # 401, 403
    case("401-anonymous-read", "GET", WF, None, 401, "not_authenticated", role=None),
    case("401-anonymous-write", "POST", WF, manifest_json(name="anon"), 401, "not_authenticated", role=None),
    case("403-viewer-write", "POST", WF, manifest_json(name="peek"), 403, "permission_denied", role=Role.VIEWER),
    case("403-author-publish", "POST", ONE + "/publish", "{}", 403, "permission_denied", role=Role.AUTHOR),
    # 404
    case("404-unknown-id", "GET", f"{WF}/{UNKNOWN_ID}", None, 404, "not_found"),
    case("404-unknown-id-write", "PUT", f"{WF}/{UNKNOWN_ID}/draft", manifest_json(), 404, "not_found"),
    case("404-malformed-uuid", "GET", WF + "/not-a-uuid", None, 404, "not_found"),
    case("404-malformed-receipt-id", "GET", "/api/receipts/12345", None, 404, "not_found"),
    case("404-unknown-route", "GET", "/api/nope", None, 404, "not_found"),
    case("404-unknown-route-html", "GET", "/api/nope", None, 404, "not_found", extra={"HTTP_ACCEPT": "text/html"}),
    case("404-unknown-route-anonymous", "GET", "/api/nope", None, 404, "not_found", role=None),
    case("404-no-such-version", "GET", ONE + "/versions/9.9.9", None, 404, "not_found"),
    case("400-nul-in-version", "GET", ONE + "/versions/%00", None, 400, "bad_request"),
    case("404-unknown-snapshot", "GET", "/api/snapshots/sha256:" + "0" * 64, None, 404, "not_found"),
    case("404-page-out-of-range", "GET", WF + "?page=99", None, 404, "not_found"),
    # 405, 406
    case("405-delete-list", "DELETE", WF, None, 405, "method_not_allowed", role=Role.ADMIN),
    case("405-put-publish", "PUT", ONE + "/publish", "{}", 405, "method_not_allowed", role=Role.ADMIN),
    case("406-xml", "GET", WF, None, 406, "not_acceptable", extra={"HTTP_ACCEPT": "application/xml"}),
    # 409
    case("409-duplicate-name", "POST", WF, manifest_json(), 409, "workflow_exists"),
    case(
        "409-duplicate-name-as-yaml-text",
        "POST",
        WF,
        json.dumps({"manifest": yaml.safe_dump(manifest())}),
        409,
        "workflow_exists",
    ),
    # 413
    case(
        "413-declared-content-length", "POST", WF, "{}", 413, "payload_too_large", extra={"CONTENT_LENGTH": str(10**12)}
    ),
    # 415
    case(
        "415-text-plain",
        "POST",
        WF,
        manifest_json(name="plain"),
        415,
        "unsupported_media_type",
        content_type="text/plain",
    ),
    case("415-xml", "PUT", DRAFT, "<manifest/>", 415, "unsupported_media_type", content_type="application/xml"),
    case("415-form", "POST", WF, "manifest=x", 415, "unsupported_media_type", content_type=FORM),
]


@pytest.fixture
def existing(author: APIClient) -> str:
    """A workflow named hello-world already stored in the tenant; returns its id."""
    response = author.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["id"])


@pytest.mark.parametrize("bad", BAD_REQUESTS)
def test_bad_request_answers_the_error_shape_and_writes_nothing(
    make_client: Callable[..., APIClient], tenant: Tenant, existing: str, bad: Bad
) -> None:
    client = APIClient() if bad.role is None else make_client(bad.role, tenant)
    before = stored()
    response = client.generic(
        bad.method, bad.path.format(workflow=existing), bad.body or "", content_type=bad.content_type, **bad.extra
    )
    assert_error(response, bad.status, bad.code)
    assert stored() == before


def test_malformed_json_names_line_and_column(author: APIClient) -> None:
    body = '{"manifest":\n  {"name": }}'
    error = assert_error(author.generic("POST", "/api/workflows", body, content_type=JSON), 400, "parse_error")
    assert "line 2, column 12" in error["message"], error


def test_duplicate_key_is_named(author: APIClient) -> None:
    body = '{"manifest": {"name": "a", "name": "b"}}'
    error = assert_error(author.generic("POST", "/api/workflows", body, content_type=JSON), 400, "parse_error")
    assert "name" in error["message"] and "duplicate" in error["message"].lower(), error


def test_validate_does_not_call_valid_what_cannot_be_stored(author: APIClient) -> None:
    """``valid: true`` promises that the same manifest can be saved; a NUL character cannot be (PostgreSQL)."""
    doc = manifest(description="nul \u0000 byte")
    body = author.post("/api/manifests/validate", {"manifest": doc}, format="json").json()
    assert body["valid"] is False, body
    assert body["problems"][0]["path"] == "/description", body


def test_yaml_alias_bomb_is_refused_quickly(author: APIClient) -> None:
    started = time.monotonic()
    response = author.generic("POST", "/api/workflows", ALIAS_BOMB, content_type=YAML)
    elapsed = time.monotonic() - started
    assert_error(response, 400, "manifest_syntax")
    assert elapsed < 5, f"alias bomb took {elapsed:.1f}s"
    assert not Workflow.objects.exists()


def test_yaml_syntax_error_names_the_position(author: APIClient) -> None:
    text = "name: ok\nversion: [1.0.0\ntasks: []\n"
    error = assert_error(author.generic("POST", "/api/workflows", text, content_type=YAML), 400, "manifest_syntax")
    assert "line" in error["message"] and "column" in error["message"], error


def test_body_over_the_limit_is_413(author: APIClient, settings: Any) -> None:
    body = b'{"manifest": "' + b"x" * settings.MC_MAX_REQUEST_BYTES + b'"}'
    error = assert_error(author.generic("POST", "/api/workflows", body, content_type=JSON), 413, "payload_too_large")
    assert str(settings.MC_MAX_REQUEST_BYTES) in error["message"]
    assert not Workflow.objects.exists()


def test_limit_follows_the_setting(author: APIClient, settings: Any) -> None:
    settings.MC_MAX_REQUEST_BYTES = 1000
    small = author.generic("POST", "/api/manifests/validate", manifest_json(), content_type=JSON)
    assert small.status_code == 200, small.json()
    big = json.dumps({"manifest": manifest(description="d" * 1000)})
    assert_error(author.generic("POST", "/api/manifests/validate", big, content_type=JSON), 413, "payload_too_large")


@pytest.mark.parametrize("as_yaml", [False, True], ids=["json", "yaml"])
def test_manifest_over_one_mib_is_413(author: APIClient, settings: Any, as_yaml: bool) -> None:
    doc = with_message("x" * (1024 * 1024 + 1))
    if as_yaml:
        body, content_type = yaml.safe_dump(doc, width=2**31), YAML
    else:
        body, content_type = json.dumps({"manifest": doc}), JSON
    assert len(body) < settings.MC_MAX_REQUEST_BYTES  # under the request limit: the manifest limit must catch it
    assert_error(author.generic("POST", "/api/workflows", body, content_type=content_type), 413, "manifest_too_large")
    assert not Workflow.objects.exists()


@pytest.fixture
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_user_throttle_is_429_with_retry_after(author: APIClient, settings: Any, empty_cache: None) -> None:
    settings.MC_THROTTLE_USER = "3/min"
    for _ in range(3):
        assert author.get("/api/workflows").status_code == 200
    response = author.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert not Workflow.objects.exists()


def test_throttle_counts_per_user(
    make_client: Callable[..., APIClient], tenant: Tenant, settings: Any, empty_cache: None
) -> None:
    settings.MC_THROTTLE_USER = "2/min"
    first, second = make_client(Role.VIEWER, tenant), make_client(Role.VIEWER, tenant)
    for _ in range(2):
        assert first.get("/api/workflows").status_code == 200
    assert_error(first.get("/api/workflows"), 429, "throttled")
    assert second.get("/api/workflows").status_code == 200


def test_anonymous_throttle_on_public_endpoint(settings: Any, empty_cache: None) -> None:
    settings.MC_THROTTLE_ANON = "2/min"
    client = APIClient()
    for _ in range(2):
        assert client.get("/api/schemas/manifest.v1.json").status_code == 200
    response = client.get("/api/schemas/manifest.v1.json")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_healthz(db: Any) -> None:
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(db: Any) -> None:
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {"database": True, "broker": True}


def test_a_missing_method_is_405_for_every_role(viewer: APIClient) -> None:
    response = viewer.delete("/api/workflows")
    assert_error(response, 405, "method_not_allowed")
