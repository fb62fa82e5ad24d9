"""Which version an execution that pins none runs, while a canary release routes traffic.

``route_for`` is the engine's router (``executions.routing``), registered in ``CanaryConfig.ready``.

The hot path of every unpinned execution: one narrow indexed query for the workflow's
newest release; its versions come from the cache of published versions.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from canary.choices import Arm, CanaryState, CanaryStrategy
from canary.models import CanaryRelease
from executions.routing import Route
from workflows.models import Workflow, WorkflowVersion
from workflows.selectors import published_version

BUCKETS = 100


def routing_bucket(*, tenant_id: Any, workflow_id: Any, idempotency_key: str | None) -> int:
    """0 to 99: from the idempotency key when there is one (the same key always lands in the
    same bucket), at random otherwise."""
    if idempotency_key is None:
        return secrets.randbelow(BUCKETS)
    digest = hashlib.sha256(f"{tenant_id}:{workflow_id}:{idempotency_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_choose(*, state: str, strategy: str, weight: int, bucket: int) -> str:
    """The arm of one execution, from the release's state, strategy and weight (a pure function)."""
    if state != CanaryState.RUNNING:
        return Arm.STABLE  # paused and rolled back: all to stable
    if strategy == CanaryStrategy.BLUE_GREEN:
        return Arm.CANARY  # the switch: all traffic at once
    return Arm.CANARY if bucket < weight else Arm.STABLE


def route_for(*, tenant_id: Any, workflow_id: Any, idempotency_key: str | None) -> Route | None:
    """The route of an unpinned execution of the workflow, or None: run the latest published version.

    The newest release decides. Running and paused ones route; a promoted one does not
    (its canary is the latest). A rolled-back one holds traffic on its stable version
    until a version newer than its canary is published (or a newer release starts).
    One narrow indexed query; the versions come from the process's cache of published ones.
    """
    newest = (
        CanaryRelease.objects.filter(workflow_id=workflow_id)
        .order_by("-created_at", "-id")
        .values_list("pk", "state", "strategy", "weight", "stable_version_id", "canary_version_id")
        .first()
    )
    if newest is None:
        return None
    release_id, state, strategy, weight, stable_id, canary_id = newest
    if state == CanaryState.PROMOTED:
        return None
    workflow = Workflow(pk=workflow_id)
    if state == CanaryState.ROLLED_BACK and _published_after(published_version(workflow=workflow, pk=canary_id)):
        return None
    bucket = routing_bucket(tenant_id=tenant_id, workflow_id=workflow_id, idempotency_key=idempotency_key)
    arm = arm_choose(state=state, strategy=strategy, weight=weight, bucket=bucket)
    version = published_version(workflow=workflow, pk=canary_id if arm == Arm.CANARY else stable_id)
    return Route(version=version, release_id=release_id, arm=arm)


def _published_after(version: WorkflowVersion) -> bool:
    return (
        WorkflowVersion.objects.filter(workflow_id=version.workflow_id, published_at__gt=version.published_at)
        .exclude(pk=version.pk)
        .exists()
    )
