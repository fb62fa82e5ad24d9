"""Fixtures for engine tests: a real Celery worker on the test database, and helpers to run workflows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from executions.choices import EXECUTION_TERMINAL
from executions.models import Execution, StepRun
from mc_project.celery import app
from mc_project.tenancy.choices import Role
from tests.factories import UserFactory
from tests.workers import WorkerProcess, purge_queues, wait_until
from workflows.models import WorkflowVersion
from workflows.services import workflow_create, workflow_publish


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
    if not session_worker.alive:
        session_worker.start()
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


def wait_finished(execution: Execution, timeout: float = 40) -> Execution:
    def finished() -> Execution | None:
        execution.refresh_from_db()
        return execution if execution.status in EXECUTION_TERMINAL else None

    try:
        return wait_until(finished, timeout=timeout, message=f"execution {execution.pk} to finish")  # type: ignore[no-any-return]
    except AssertionError as exc:
        steps = StepRun.objects.filter(execution=execution).values_list(
            "step_id", "kind", "status", "attempt", "attempts", "worker", "attempt_started_at"
        )
        raise AssertionError(f"{exc}; status {execution.status}; steps: {list(steps)}") from None


def steps_by_id(execution: Execution, kind: str = "step") -> dict[str, StepRun]:
    return {step.step_id: step for step in StepRun.objects.filter(execution=execution, kind=kind)}


def workflow_doc(name: str, tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "tasks": tasks, **extra}
