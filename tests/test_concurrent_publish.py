"""Concurrent publishes of one draft, as parallel HTTP requests against PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from mc_project.tenancy.services import token_create
from tests.factories import UserFactory, manifest
from workflows.models import WorkflowVersion
from workflows.services import draft_save, workflow_create

PARALLEL = 8


def publish_in_parallel(url: str, token: str, count: int) -> list[httpx.Response]:
    barrier = threading.Barrier(count)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(headers={"Authorization": f"Token {token}"}, timeout=30) as client:
            barrier.wait()
            response = client.post(url, json={"bump": "patch"})
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.django_db(transaction=True)
def test_parallel_publishes_make_exactly_one_version_each_round(live_server: Any, tenant: Any) -> None:
    user = UserFactory(membership__tenant=tenant, membership__role="publisher")
    _, token = token_create(user=user)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest())
    url = f"{live_server.url}/api/workflows/{workflow.pk}/publish"
    for round_ in range(4):
        if round_:
            draft_save(workflow=workflow, actor=user, manifest=manifest(description=f"round {round_}"))
        responses = publish_in_parallel(url, token, PARALLEL)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (PARALLEL - 1), [r.text for r in responses]
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"no_draft"}
    versions = list(WorkflowVersion.objects.filter(workflow=workflow).values_list("version", flat=True))
    assert sorted(versions) == ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]  # no duplicate, none skipped
