"""Reads for the admin index's overview: what an operator checks first, over every tenant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from executions.choices import ExecutionMode, ExecutionStatus, StepStatus
from executions.models import Execution, StepRun

WINDOW = timedelta(hours=24)


def console_overview() -> dict[str, Any]:
    """Runs by status in the last 24 h, failing workflows, queue backlog, quota waits,
    active canaries and the latest receipt verified now."""
    from canary.choices import CanaryState
    from canary.models import CanaryRelease

    since = timezone.now() - WINDOW
    recent = Execution.objects.filter(created_at__gte=since, mode=ExecutionMode.RUN)
    by_status = dict(recent.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    failing = list(
        recent.values("workflow__name", "workflow_id")
        .annotate(failed=Count("pk", filter=Q(status=ExecutionStatus.FAILED)), total=Count("pk"))
        .filter(failed__gt=0)
        .order_by("-failed", "workflow__name")[:10]
    )
    backlog = dict(
        StepRun.objects.filter(status=StepStatus.QUEUED)
        .values_list("resource_class")
        .annotate(n=Count("pk"))
        .values_list("resource_class", "n")
    )
    quota = dict(
        StepRun.objects.filter(quota_held_since__isnull=False, status__in=[StepStatus.QUEUED, StepStatus.PENDING])
        .values_list("resource_class")
        .annotate(n=Count("pk"))
        .values_list("resource_class", "n")
    )
    canaries = list(
        CanaryRelease.objects.filter(state__in=[CanaryState.RUNNING, CanaryState.PAUSED])
        .select_related("workflow", "canary_version", "stable_version")
        .only("id", "state", "weight", "workflow__name", "canary_version__version", "stable_version__version")[:10]
    )
    return {
        "by_status": [(status, by_status.get(status, 0)) for status in ExecutionStatus.values if status != "planned"],
        "runs_24h": sum(by_status.values()),
        "failing": failing,
        "backlog": [(rc, backlog.get(rc, 0), quota.get(rc, 0)) for rc in ("small", "medium", "large")],
        "quota_waiting": sum(quota.values()),
        "canaries": canaries,
        "receipt": _latest_receipt(),
    }


def _latest_receipt() -> dict[str, Any] | None:
    from receipts.models import Receipt
    from receipts.verification import receipt_verify

    receipt = Receipt.objects.filter(signed_at__isnull=False).order_by("-signed_at").first()
    if receipt is None:
        return None
    verdict = receipt_verify(receipt)
    failed = [f"{check.name}: {check.message}" for check in verdict.checks if not check.ok]
    return {"receipt": receipt, "ok": verdict.ok, "failed": failed}
