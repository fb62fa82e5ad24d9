"""Property-based fuzzing of every API operation against MC's own OpenAPI schema (schemathesis).

The schema is the one the app serves (``/api/schema/``); requests go through the WSGI app
in-process, as an admin (and platform staff) of a tenant with real data: a workflow with
a published version and a draft, a dry run, a canary release. Each operation gets a few
generated requests, valid ones and ones that break the schema (negative), derandomised
so a CI run is reproducible; about half of them name the real objects in their path,
the rest random ones. Every response is checked:

- never a 5xx (``not_a_server_error``);
- its status is one the schema lists for the operation (``status_code_conformance``);
- its body and content type match what the schema says for that status.

``MC_FUZZ_EXAMPLES`` sets the examples per operation (``make fuzz`` runs many more).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import checks
from schemathesis.core.result import Err

from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import token_create
from tests.factories import UserFactory, manifest

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("MC_FUZZ_EXAMPLES", "8"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.response_schema_conformance,
    checks.content_type_conformance,
]


@pytest.fixture
def fuzz_world(tenant: Tenant) -> dict[str, Any]:
    """A tenant admin's token and the ids of real objects to put in paths."""
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN, is_staff=True)
    _, token = token_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    def ok(response: Any) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.content[:500]
        return dict(response.json())

    doc = manifest(name="fuzzed", inputs={"n": {"type": "integer", "default": 1}})
    workflow = ok(client.post("/api/workflows", {"manifest": doc}, format="json"))
    first = ok(client.post(f"/api/workflows/{workflow['id']}/publish", {}, format="json"))
    ok(client.put(f"/api/workflows/{workflow['id']}/draft", {"manifest": {**doc, "description": "2"}}, format="json"))
    ok(client.post(f"/api/workflows/{workflow['id']}/publish", {}, format="json"))
    ok(client.put(f"/api/workflows/{workflow['id']}/draft", {"manifest": {**doc, "description": "3"}}, format="json"))
    run = ok(client.post("/api/executions", {"workflow": "fuzzed", "mode": "dry_run"}, format="json"))
    release = ok(client.post("/api/canaries", {"workflow": "fuzzed"}, format="json"))
    decisions = ok(client.get("/api/policy/decisions"))["results"]
    return {
        "token": token,
        "path": {
            "workflow_id": workflow["id"],
            "version": first["version"]["version"],
            "digest": first["version"]["digest"].removeprefix("sha256:"),
            "execution_id": run["id"],
            "step_id": "fetch",
            "release_id": release["id"],
            "receipt_id": first["receipt_id"],
            "decision_id": decisions[0]["id"] if decisions else run["id"],
        },
    }


def fuzz_operation(operation: Any, world: dict[str, Any], examples: int) -> int:
    """Send ``examples`` generated requests to one operation; returns how many were sent."""
    headers = {"Authorization": f"Token {world['token']}"}
    sent: list[Any] = []

    cases = st.one_of(*[operation.as_strategy(mode) for mode in schemathesis.GenerationMode])

    @given(case=cases, real=st.booleans())
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, real: bool) -> None:
        if real and case.path_parameters:
            case.path_parameters.update({k: v for k, v in world["path"].items() if k in case.path_parameters})
        sent.append(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
    return len(sent)


@contextlib.contextmanager
def keep_test_connection() -> Iterator[None]:
    """Requests through the WSGI app keep the test's database connection, as Django's test client does.

    The handler closes "old" connections at each request's start and end, and the test's
    connection (inside its transaction) looks old to it.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def fuzz_operations(world: dict[str, Any], examples: int) -> tuple[int, int, list[str]]:
    """Run every operation; returns (operations, requests, failures)."""
    with keep_test_connection():
        return _fuzz_operations(world, examples)


def _fuzz_operations(world: dict[str, Any], examples: int) -> tuple[int, int, list[str]]:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    failures: list[str] = []
    operations = requests = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # the schema itself is broken somewhere: report, go on
            failures.append(f"invalid schema: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        try:
            requests += fuzz_operation(operation, world, examples)
        except (Exception, BaseExceptionGroup) as exc:  # a failed check: collected, one run reports all
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    return operations, requests, failures


# With a secret, the webhook checks signatures (401) instead of answering 503 webhook_disabled.
@override_settings(MC_CANARY_WEBHOOK_SECRET="fuzz-secret")
def test_every_operation_answers_what_its_schema_says(fuzz_world: dict[str, Any]) -> None:
    started = time.monotonic()
    operations, requests, failures = fuzz_operations(fuzz_world, EXAMPLES)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {operations} operations, {requests} requests, {elapsed:.1f} s")
    assert operations >= 45
    assert not failures, "\n\n".join(failures)
