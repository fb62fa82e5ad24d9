"""MC's own series on /metrics after real activity: runs on a real worker, receipts signed and verified.

Most of these are counted inside the worker's processes (steps, run outcomes, signing), so
the test also checks that this process did not count them itself. The metrics directory is
shared by the whole test run: every check compares the value before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from executions.services import execution_create
from executions.tests.conftest import wait_finished, workflow_doc
from mc_project import metrics
from mc_project.tenancy.choices import Role
from mc_project.tests.test_metrics import scrape
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from tests.workers import WorkerProcess, wait_until

OK = workflow_doc(
    "metrics-ok",
    [
        {"id": "hello", "uses": "pkg:mc/echo@1", "with": {"message": "hi"}, "resource_class": "medium"},
        {"id": "bye", "uses": "pkg:mc/echo@1", "with": {"message": "bye"}, "needs": ["hello"]},
    ],
)
FAILS = workflow_doc("metrics-fails", [{"id": "boom", "uses": "pkg:mc/fail@1", "with": {"message": "no"}}])

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def observed_here(**labels: str) -> float:
    """Step attempts observed by this process alone (its own file), not summed over processes."""
    child = metrics.STEP_DURATION.labels(**labels)
    return sum(bucket.get() for bucket in child._buckets)  # type: ignore[attr-defined]


def signed(execution: Any) -> Receipt:
    def found() -> Receipt | None:
        return Receipt.objects.filter(execution=execution, kind=ReceiptKind.EXECUTION, signed_at__isnull=False).first()

    return wait_until(found, timeout=20, message=f"the receipt of {execution.pk}")  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_shows_the_series_counted_by_workers_and_the_api(
    worker: WorkerProcess,
    publish: Callable[[dict[str, Any]], Any],
    tenant: Any,
    runner_user: Any,
    make_client: Callable[..., APIClient],
    client: Client,
) -> None:
    echo_medium = {"resource_class": "medium", "package": "pkg:mc/echo@1"}
    local_steps = observed_here(**echo_medium)
    before = scrape(client)

    runs = []
    for doc in (OK, FAILS):
        version = publish(doc)
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        runs.append(wait_finished(execution))
    receipts = [signed(run) for run in runs]
    api = make_client(Role.VIEWER, tenant)
    assert api.get(f"/api/receipts/{receipts[0].pk}/verify").json()["ok"] is True
    Receipt.objects.filter(pk=receipts[1].pk).update(digest="sha256:" + "0" * 64)  # tampered with
    assert api.get(f"/api/receipts/{receipts[1].pk}/verify").json()["ok"] is False

    after = scrape(client)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) >= by

    assert grew("mc_step_duration_seconds_count", **echo_medium)
    assert grew("mc_step_duration_seconds_count", resource_class="small", package="pkg:mc/echo@1")
    assert grew("mc_step_duration_seconds_count", resource_class="small", package="pkg:mc/fail@1")
    assert value(after, "mc_step_duration_seconds_sum", **echo_medium) > value(
        before, "mc_step_duration_seconds_sum", **echo_medium
    )
    assert grew("mc_publish_to_start_seconds_count", by=2)  # the root step of each run; "bye" is no root
    assert grew("mc_publish_to_start_seconds_bucket", by=2, le="+Inf")
    assert grew("mc_executions_total", status="succeeded")
    assert grew("mc_executions_total", status="failed")
    assert grew("mc_receipts_signed_total", by=2, kind="execution")
    assert grew("mc_receipts_signed_total", by=2, kind="publish")
    assert grew("mc_receipt_verifications_total", result="ok")
    assert grew("mc_receipt_verifications_total", result="failed")
    # The steps ran in the worker's pool processes: this process counted none of them.
    assert observed_here(**echo_medium) == local_steps
