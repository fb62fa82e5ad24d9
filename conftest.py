"""Fixtures shared by every test package: tenants, users of each role, token-authenticated clients."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from mc_project.celery import app
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import token_create
from tests.factories import TenantFactory, UserFactory
from tests.workers import WorkerProcess, purge_queues, wait_until
from workflows.models import WorkflowVersion
from workflows.services import workflow_create, workflow_publish


@pytest.fixture(autouse=True)
def _fresh_policy_caches() -> None:
    """Rows a rolled-back test created must not outlive it in the per-process policy caches."""
    from policy.services import policy_caches_clear

    policy_caches_clear()


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(slug="acme")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    return TenantFactory(slug="globex")


@pytest.fixture
def make_client(db: Any) -> Callable[..., APIClient]:
    """``make_client(role, tenant)``: an API client signed in with a real token of a new user."""

    def make(role: str = Role.ADMIN, tenant: Tenant | None = None) -> APIClient:
        user = UserFactory(membership__tenant=tenant or TenantFactory(), membership__role=role)
        _, raw = token_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def author(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


@pytest.fixture
def publisher(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.PUBLISHER, tenant)


@pytest.fixture
def viewer(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.VIEWER, tenant)


@pytest.fixture
def outsider(make_client: Callable[..., APIClient], other_tenant: Tenant) -> APIClient:
    """An admin of another tenant: must see none of ``tenant``'s objects."""
    return make_client(Role.ADMIN, other_tenant)


# --- a real Celery worker, one for the whole run (tests/workers.py) ------------------------


@pytest.fixture(scope="session")
def worker_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="session")
def session_worker(django_db_setup: Any, django_db_blocker: Any, worker_log_dir: Path) -> Iterator[WorkerProcess]:
    with django_db_blocker.unblock():
        purge_queues(app)
        worker = WorkerProcess(worker_log_dir, name="mc-test").start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(session_worker: WorkerProcess, transactional_db: Any) -> Iterator[WorkerProcess]:
    """The shared worker, (re)started if an earlier test killed it.

    At the end it waits (a few seconds at most) for the receipts of the test's runs and
    publishes to be signed: signing after the test would race the flush of its tables.
    """
    from executions.models import WorkerHeartbeat

    if not session_worker.alive:
        session_worker.start()
    # The flush after the previous test removed the worker's heartbeat: until it beats again
    # (within MC_WORKER_HEARTBEAT_INTERVAL) a duplicate delivery would find no evidence of it.
    wait_until(lambda: WorkerHeartbeat.objects.exists(), timeout=10, message="the worker's heartbeat")
    yield session_worker
    from receipts.models import Receipt

    if session_worker.alive:
        # A receipt the worker could not sign: the test that made it says why, not this teardown.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not Receipt.objects.filter(signed_at__isnull=True).exists(), timeout=10)


@pytest.fixture
def runner_user(tenant: Any) -> Any:
    return UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)


@pytest.fixture
def publish(tenant: Any, runner_user: Any) -> Callable[[dict[str, Any]], WorkflowVersion]:
    """Create and publish a workflow from a manifest; returns the published version."""

    def make(doc: dict[str, Any]) -> WorkflowVersion:
        workflow = workflow_create(tenant=tenant, actor=runner_user, manifest=doc)
        return workflow_publish(workflow=workflow, actor=runner_user).version

    return make
