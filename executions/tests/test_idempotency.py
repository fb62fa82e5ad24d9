"""Idempotency keys: a repeat returns the first execution, a different body is a conflict,
and twenty concurrent requests with one key create exactly one execution."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from rest_framework.test import APIClient

from executions.models import Execution, StepRun
from executions.tests.conftest import workflow_doc
from mc_project.celery import app
from mc_project.tenancy.choices import Role
from mc_project.tenancy.services import token_create
from tests.factories import UserFactory
from tests.workers import purge_queues

DOC = workflow_doc(
    "idem",
    [{"id": "hello", "uses": "pkg:mc/echo@1", "with": {"message": "${{ inputs.who }}"}}],
    inputs={"who": {"type": "string", "default": "world"}},
)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_one_key_create_one_execution(
    live_server: Any, tenant: Any, publish: Any
) -> None:
    version = publish(DOC)
    user = UserFactory(membership__tenant=tenant, membership__role=Role.AUTHOR)
    _, token = token_create(user=user)
    barrier = threading.Barrier(20)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(headers={"Authorization": f"Token {token}", "Idempotency-Key": "deploy-42"}, timeout=30) as c:
            barrier.wait()
            response = c.post(f"{live_server.url}/api/executions", json={"workflow": "idem", "inputs": {"who": "ops"}})
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code not in (200, 201)]
        assert len({r.json()["id"] for r in responses}) == 1
        assert Execution.objects.filter(tenant=tenant).count() == 1
        assert StepRun.objects.count() == 1  # the steps of one execution, created once
        assert version.pk == Execution.objects.get().workflow_version_id
    finally:
        purge_queues(app)


@pytest.mark.django_db(transaction=True)
def test_same_key_same_body_returns_it_and_a_different_body_conflicts(
    make_client: Callable[..., APIClient], tenant: Any, other_tenant: Any, publish: Any
) -> None:
    publish(DOC)
    client = make_client(Role.AUTHOR, tenant)
    body = {"workflow": "idem", "inputs": {"who": "a"}, "idempotency_key": "k1"}
    try:
        first = client.post("/api/executions", body, format="json")
        assert first.status_code == 201, first.content
        again = client.post("/api/executions", body, format="json")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        header = client.post(
            "/api/executions", {"workflow": "idem", "inputs": {"who": "a"}}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        )
        assert header.status_code == 200 and header.json()["id"] == first.json()["id"]
        different = client.post("/api/executions", {**body, "inputs": {"who": "b"}}, format="json")
        assert different.status_code == 409
        assert different.json()["error"]["code"] == "idempotency_key_reused"
        assert different.json()["error"]["details"][0]["path"] == "/idempotency_key"
        mismatch = client.post("/api/executions", body, format="json", HTTP_IDEMPOTENCY_KEY="other")
        assert mismatch.status_code == 400
        # Keys are per tenant: another tenant's same key is a new execution of its own.
        assert Execution.objects.count() == 1
        assert Execution.objects.get().inputs == {"who": "a"}
    finally:
        purge_queues(app)
