"""Bad input answers 4xx in MC's one error shape, never 500, and stores nothing.

Each case here was a 500 once (issue 18): an exception from ``int()``, PostgreSQL or
``rfc8785`` escaping a view instead of a validation error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from executions.models import Execution
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import token_create
from tests.asserts import assert_error
from tests.factories import UserFactory, manifest
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db

JSON = "application/json"


def post(client: APIClient, path: str, body: str) -> Any:
    return client.post(path, data=body, content_type=JSON)


@pytest.fixture
def admin(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.ADMIN, tenant)


@pytest.fixture
def numbers_workflow(admin: APIClient) -> dict[str, Any]:
    """A published workflow with a number input and an object input."""
    doc = manifest(name="numbers", inputs={"n": {"type": "number"}, "o": {"type": "object"}})
    created = admin.post("/api/workflows", {"manifest": doc}, format="json")
    assert created.status_code == 201, created.content
    published = admin.post(f"/api/workflows/{created.json()['id']}/publish", {}, format="json")
    assert published.status_code == 201, published.content
    return created.json()


# --- manifests: a key that is a Unicode digit ---------------------------------------------


@pytest.mark.parametrize("key", ["²", "٣", "1²", "⑤"])
def test_manifest_key_with_a_unicode_digit_is_a_validation_problem(admin: APIClient, key: str) -> None:
    body = json.dumps({"manifest": {key: 1}})
    for path in ("/api/workflows", "/api/manifests/plan"):
        assert_error(post(admin, path, body), 400, "manifest_invalid")
    validated = post(admin, "/api/manifests/validate", body)
    assert validated.status_code == 200, validated.content
    assert validated.json()["valid"] is False
    assert Workflow.objects.count() == 0


# --- date filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T00:00:00+24:00",  # no such offset
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2020-13-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_a_date_filter_out_of_range_is_a_400(admin: APIClient, name: str, value: str) -> None:
    response = admin.get("/api/executions", {name: value})
    assert_error(response, 400, "validation_failed", [f"/{name}"])


@pytest.mark.parametrize("hours", [16, -23, 15, 0])
def test_a_date_filter_with_any_offset_python_reads_is_honoured(
    admin: APIClient, numbers_workflow: dict[str, Any], hours: int
) -> None:
    """Offsets up to +/-23:59 are valid ISO 8601 (PostgreSQL takes only +/-15:59: it was a 500)."""
    started = post(admin, "/api/executions", json.dumps({"workflow": "numbers", "mode": "dry_run"}))
    assert started.status_code == 201, started.content
    created = Execution.objects.get().created_at.replace(microsecond=0)
    before = created.astimezone(_offset(hours)).isoformat()
    after = (created + timedelta(seconds=1)).astimezone(_offset(hours)).isoformat()
    assert before.endswith(f"{hours:+03d}:00") or hours == 0, before
    for query, expected in (
        ({"created_after": before}, [started.json()["id"]]),
        ({"created_after": after}, []),
        ({"created_before": after}, [started.json()["id"]]),
        ({"created_before": before}, []),
    ):
        response = admin.get("/api/executions", query)
        assert response.status_code == 200, response.content
        assert [row["id"] for row in response.json()["results"]] == expected, query


def _offset(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


# --- numbers and strings JSON cannot carry exactly --------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "path"),
    [
        ('{"n": 1e999}', "/inputs/n"),
        ('{"n": -1e999}', "/inputs/n"),
        ('{"o": {"deep": [1, 2, 1e400]}}', "/inputs/o/deep/2"),
    ],
)
def test_an_infinite_number_is_refused_by_the_parser_with_its_path(
    admin: APIClient, numbers_workflow: dict[str, Any], inputs: str, path: str
) -> None:
    response = post(admin, "/api/executions", '{"workflow": "numbers", "inputs": ' + inputs + "}")
    assert_error(response, 400, "parse_error", [path])
    assert Execution.objects.count() == 0


def test_a_lone_surrogate_is_refused_by_the_parser_with_its_path(
    admin: APIClient, numbers_workflow: dict[str, Any]
) -> None:
    body = '{"workflow": "numbers", "inputs": {"o": {"\\ud800": "x", "k": ["\\udfff"]}}}'
    response = post(admin, "/api/executions", body)
    assert_error(response, 400, "parse_error", ["/inputs/o/\\ud800", "/inputs/o/k/0"])
    # A surrogate pair is one character, and fine.
    pair = '{"workflow": "numbers", "mode": "dry_run", "inputs": {"o": {"k": "\\ud83d\\ude00"}}}'
    fine = post(admin, "/api/executions", pair)
    assert fine.status_code == 201, fine.content


@pytest.mark.parametrize(
    ("inputs", "path"),
    [
        ({"n": 2**53}, "/inputs/n"),
        ({"o": {"big": [-(2**60)]}}, "/inputs/o/big/0"),
        ({"o": {"nul": "a\x00b"}}, "/inputs/o/nul"),
    ],
)
def test_inputs_that_canonical_json_or_postgresql_cannot_carry_are_refused(
    admin: APIClient, numbers_workflow: dict[str, Any], inputs: dict[str, Any], path: str
) -> None:
    plan = f"/api/workflows/{numbers_workflow['id']}/versions/1.0.0/plan"
    for url, body in (("/api/executions", {"workflow": "numbers", "inputs": inputs}), (plan, {"inputs": inputs})):
        assert_error(admin.post(url, body, format="json"), 400, "validation_failed", [path])
    assert Execution.objects.count() == 0


# --- path and query parameters ------------------------------------------------------------------


def test_a_nul_byte_in_a_path_segment_is_a_400(admin: APIClient, numbers_workflow: dict[str, Any]) -> None:
    started = post(admin, "/api/executions", json.dumps({"workflow": "numbers", "mode": "dry_run"}))
    execution = started.json()["id"]
    for path in (
        f"/api/executions/{execution}/steps/a%00b",
        f"/api/executions/{execution}/steps/a%00b/logs",
        f"/api/workflows/{numbers_workflow['id']}/versions/1.0.0%00",
    ):
        assert_error(admin.get(path), 400, "bad_request")


@pytest.mark.parametrize(
    "query",
    [
        {"shard": "²"},
        {"shard": "٣"},
        {"shard": "99999999999999999999"},
        {"shard": "-1"},
        {"kind": "a\x00b"},
    ],
)
def test_a_bad_step_query_is_a_400(admin: APIClient, numbers_workflow: dict[str, Any], query: dict[str, str]) -> None:
    started = post(admin, "/api/executions", json.dumps({"workflow": "numbers", "mode": "dry_run"}))
    execution = started.json()["id"]
    assert_error(admin.get(f"/api/executions/{execution}/steps/fetch", query), 400, "validation_failed")


@pytest.mark.parametrize("name", ["search", "name"])
def test_a_nul_byte_in_a_query_parameter_is_a_400(admin: APIClient, name: str) -> None:
    assert_error(admin.get("/api/workflows", {name: "a\x00b"}), 400, "validation_failed")


def test_a_nul_byte_in_the_idempotency_key_header_is_a_400(admin: APIClient, numbers_workflow: dict[str, Any]) -> None:
    response = admin.post("/api/executions", {"workflow": "numbers"}, format="json", HTTP_IDEMPOTENCY_KEY="a\x00b")
    assert_error(response, 400, "validation_failed", ["/headers/Idempotency-Key"])
    assert Execution.objects.count() == 0


@override_settings(MC_CANARY_WEBHOOK_SECRET="s3cret-for-tests")
@pytest.mark.parametrize("timestamp", ["²", "17²"])
def test_a_webhook_timestamp_of_unicode_digits_is_a_401(timestamp: str) -> None:
    response = APIClient().post(
        "/api/canary/webhook", data="{}", content_type=JSON, HTTP_X_MC_TIMESTAMP=timestamp, HTTP_X_MC_SIGNATURE="x"
    )
    assert_error(response, 401, "webhook_bad_timestamp")


def test_an_id_out_of_the_integer_range_is_a_404(admin: APIClient) -> None:
    assert_error(admin.get("/api/canaries/99999999999999999999999"), 404, "not_found")
    assert_error(admin.get("/api/canaries/99999999999999999999999/events"), 404, "not_found")


# --- the same name created 20 times at once -----------------------------------------------------

PARALLEL = 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_name_give_one_201_and_409s(live_server: Any, tenant: Tenant) -> None:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.AUTHOR)
    _, token = token_create(user=user)
    barrier = threading.Barrier(PARALLEL)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(headers={"Authorization": f"Token {token}"}, timeout=60) as client:
            barrier.wait()
            response = client.post(f"{live_server.url}/api/workflows", json={"manifest": manifest(name="race")})
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (PARALLEL - 1), [r.text[:200] for r in responses if r.status_code != 409]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"workflow_exists"}
    assert Workflow.objects.filter(name="race").count() == 1
    assert WorkflowVersion.objects.filter(workflow__name="race").count() == 1
