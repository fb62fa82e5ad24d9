"""API hygiene: JSON 404s for every unknown path, both trailing-slash forms, ids by prefix,
and content negotiation of every endpoint that answers something other than JSON."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from executions.models import Execution
from executions.services import execution_create
from mc_project.tenancy.choices import Role
from tests.asserts import assert_error
from tests.factories import UserFactory, manifest
from workflows.services import workflow_create, workflow_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def author(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


@pytest.fixture
def execution(tenant: Any) -> Execution:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest())
    workflow_publish(workflow=workflow, actor=user)
    return execution_create(tenant=tenant, actor=user, workflow=workflow)[0]


def twin(execution: Execution, pk: str) -> Execution:
    """A bare execution row of the same version with the id ``pk`` (no steps)."""
    return Execution.objects.create(
        id=uuid.UUID(pk),
        tenant=execution.tenant,
        workflow=execution.workflow,
        workflow_version=execution.workflow_version,
        inputs_digest="0" * 64,
        request_digest="0" * 64,
    )


UNKNOWN = [
    "/api",
    "/api/",
    "/api/nope",
    "/api/nope/",
    "/api/executions/not-an-id",
    "/api/executions/abc",  # shorter than a prefix may be
    "/api/executions/00000000-0000-0000-0000-000000000000/nope",
    "/api/workflows/xyz/versions",
]


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("debug", [True, False])
def test_unknown_paths_are_json_404s_even_in_debug(author: APIClient, path: str, debug: bool) -> None:
    with override_settings(DEBUG=debug):
        response = author.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] in {"not_found"}


@pytest.mark.parametrize("path", ["/api/executions", "/api/executions/", "/api/workflows/", "/api/me/"])
def test_both_trailing_slash_forms_are_served(author: APIClient, path: str) -> None:
    response = author.get(path)
    assert response.status_code == 200, response.content


def test_post_with_a_trailing_slash_starts_a_run(author: APIClient, execution: Execution) -> None:
    response = author.post("/api/executions/", {"workflow": "hello-world"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["workflow_name"] == "hello-world"


def test_schema_is_served_without_its_trailing_slash(author: APIClient) -> None:
    assert author.get("/api/schema").status_code == 200


def test_an_execution_is_found_by_a_unique_prefix(author: APIClient, execution: Execution) -> None:
    full = str(execution.pk)
    for ref in (full[:8], full[:13], full.replace("-", "")[:20], full.upper(), full.replace("-", "")):
        response = author.get(f"/api/executions/{ref}")
        assert response.status_code == 200, (ref, response.content)
        assert response.json()["id"] == full
    assert author.get(f"/api/executions/{full[:8]}/progress").json()["id"] == full
    assert author.get(f"/api/executions/{full[:8]}/steps").status_code == 200
    assert author.get(f"/api/executions/{full[:8]}/steps/fetch/logs").status_code == 200
    assert_error(author.get(f"/api/executions/{full[:7]}"), 404, "not_found")


def test_an_ambiguous_prefix_is_a_409_listing_the_candidates(author: APIClient, execution: Execution) -> None:
    first = twin(execution, "37bd3058-0000-4000-8000-000000000001")
    second = twin(execution, "37bd3058-ffff-4000-8000-000000000002")
    error = assert_error(author.get("/api/executions/37bd3058"), 409, "ambiguous_id")
    listed = " ".join(detail["message"] for detail in error["details"])
    assert str(first.pk) in listed and str(second.pk) in listed and "hello-world@" in listed
    assert author.get("/api/executions/37bd3058f").json()["id"] == str(second.pk)


def test_a_prefix_does_not_reach_another_tenants_execution(
    make_client: Callable[..., APIClient], other_tenant: Any, execution: Execution
) -> None:
    outsider = make_client(Role.ADMIN, other_tenant)
    assert_error(outsider.get(f"/api/executions/{str(execution.pk)[:8]}"), 404, "not_found")


@pytest.mark.parametrize("accept", ["text/plain", "*/*", "text/plain, application/json;q=0.5", None])
@pytest.mark.parametrize("suffix", ["/logs", "/steps/fetch/logs"])
def test_log_endpoints_answer_text_plain(
    author: APIClient, execution: Execution, accept: str | None, suffix: str
) -> None:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = author.get(f"/api/executions/{execution.pk}{suffix}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("accept", ["text/plain", "application/json", "*/*"])
def test_log_endpoint_errors_keep_the_json_shape(author: APIClient, execution: Execution, accept: str) -> None:
    response = author.get(f"/api/executions/{execution.pk}/steps/nope/logs", HTTP_ACCEPT=accept)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "no_such_step"


def test_log_endpoints_refuse_what_they_cannot_answer(author: APIClient, execution: Execution) -> None:
    response = author.get(f"/api/executions/{execution.pk}/logs", HTTP_ACCEPT="image/png")
    assert_error(response, 406, "not_acceptable")


@pytest.mark.parametrize("accept", ["application/gzip", "*/*", "application/json"])
def test_disclosure_negotiates_gzip_and_errors_as_json(author: APIClient, execution: Execution, accept: str) -> None:
    # The run has not finished: a 409 in MC's shape whatever the client accepts.
    response = author.get(f"/api/executions/{execution.pk}/disclosure.tgz", HTTP_ACCEPT=accept)
    assert response.status_code == 409
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] in {"execution_not_finished", "no_receipt", "receipt_not_signed"}


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
@pytest.mark.parametrize(
    "path", ["/api/executions", "/api/workflows", "/api/receipts", "/api/policy/decisions", "/api/me"]
)
def test_json_endpoints_negotiate_json(author: APIClient, path: str, accept: str | None) -> None:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = author.get(path, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert_error(author.get(path, HTTP_ACCEPT="text/plain"), 406, "not_acceptable")


def _get_operations() -> list[tuple[str, list[str]]]:
    """Every GET operation of the OpenAPI schema without path parameters, with the media types it answers."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, item in schema["paths"].items():
        get = item.get("get")
        if get is None or "{" in path or path.startswith("/api/schema"):
            continue
        types = sorted({t for answer in get.get("responses", {}).values() for t in answer.get("content", {})})
        operations.append((path, types))
    return operations


@pytest.mark.parametrize(("path", "types"), _get_operations())
def test_every_get_operation_answers_what_its_schema_says(author: APIClient, path: str, types: list[str]) -> None:
    response = author.get(path, HTTP_ACCEPT=", ".join(types) or "*/*")
    assert response.status_code != 406, (path, types)
    assert response["Content-Type"].split(";")[0] in {*types, "application/json"}, (path, response["Content-Type"])
    if "text/plain" not in types:
        assert_error(author.get(path, HTTP_ACCEPT="text/plain"), 406, "not_acceptable")
