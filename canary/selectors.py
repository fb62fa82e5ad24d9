"""Reads of canary releases, scoped to the caller's tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from canary.models import CanaryEvent, CanaryRelease
from mc_project.errors import NotFound
from mc_project.tenancy.selectors import tenant_for_user


def canary_list(*, user: Any) -> QuerySet[CanaryRelease]:
    return (
        CanaryRelease.objects.filter(workflow__tenant=tenant_for_user(user))
        .select_related("workflow", "stable_version", "canary_version", "created_by")
        .defer(
            "stable_version__manifest",
            "stable_version__canonical",
            "canary_version__manifest",
            "canary_version__canonical",
        )
    )


def canary_get(*, user: Any, release_id: int | str) -> CanaryRelease:
    try:
        release = canary_list(user=user).filter(pk=int(release_id)).first()
    except (ValueError, TypeError):
        release = None
    if release is None:
        raise NotFound("No such canary release (or it belongs to another tenant).")
    return release


def canary_events(*, user: Any, release_id: int | str) -> QuerySet[CanaryEvent]:
    """The release's events, oldest first (404 for another tenant's release)."""
    release = canary_get(user=user, release_id=release_id)
    return CanaryEvent.objects.filter(release=release).select_related("actor").order_by("created_at", "id")
