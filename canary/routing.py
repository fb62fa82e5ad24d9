"""Which version an execution that pins none runs, while a canary release routes traffic.

The hot path of every unpinned execution: one indexed query for the workflow's newest
release (with its two versions joined), and the latest published version only when no
release routes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from canary.choices import Arm, CanaryState, CanaryStrategy
from canary.models import CanaryRelease
from workflows.models import WorkflowVersion

BUCKETS = 100


@dataclass(frozen=True)
class Route:
    """The version an unpinned execution runs, and the release and arm it counts for."""

    version: WorkflowVersion
    release: CanaryRelease
    arm: str


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
    """
    release = (
        CanaryRelease.objects.filter(workflow_id=workflow_id)
        .select_related("stable_version", "canary_version")
        .order_by("-created_at", "-id")
        .first()
    )
    if release is None or release.state == CanaryState.PROMOTED:
        return None
    if release.state == CanaryState.ROLLED_BACK and _published_after(release.canary_version):
        return None
    bucket = routing_bucket(tenant_id=tenant_id, workflow_id=workflow_id, idempotency_key=idempotency_key)
    arm = arm_choose(state=release.state, strategy=release.strategy, weight=release.weight, bucket=bucket)
    version = release.canary_version if arm == Arm.CANARY else release.stable_version
    return Route(version=version, release=release, arm=arm)


def _published_after(version: WorkflowVersion) -> bool:
    return (
        WorkflowVersion.objects.filter(workflow_id=version.workflow_id, published_at__gt=version.published_at)
        .exclude(pk=version.pk)
        .exists()
    )
