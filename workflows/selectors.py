"""Reads of workflows, always scoped to the caller's tenant: another tenant's object is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from mc_project.errors import NotFound
from mc_project.tenancy.selectors import tenant_for_user
from workflows.choices import VersionState
from workflows.models import Workflow, WorkflowVersion


def workflow_list(*, user: Any) -> QuerySet[Workflow]:
    """The caller's workflows, annotated with ``has_draft`` and ``latest_version`` (no N+1)."""
    versions = WorkflowVersion.objects.filter(workflow=OuterRef("pk"))
    latest = versions.filter(state=VersionState.PUBLISHED).order_by("-published_at", "-id").values("version")[:1]
    return Workflow.objects.filter(tenant=tenant_for_user(user)).annotate(
        has_draft=Exists(versions.filter(state=VersionState.DRAFT)),
        latest_version=Subquery(latest),
    )


def workflow_get(*, user: Any, workflow_id: uuid.UUID | str) -> Workflow:
    try:
        workflow = workflow_list(user=user).filter(pk=workflow_id).first()
    except (ValueError, TypeError):
        workflow = None
    if workflow is None:
        raise NotFound("No such workflow.")
    return workflow


def version_list(*, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    return workflow.versions.select_related("published_by").defer("canonical")


def version_get(*, workflow: Workflow, version: str) -> WorkflowVersion:
    found = version_list(workflow=workflow).filter(state=VersionState.PUBLISHED, version=version).first()
    if found is None:
        raise NotFound(f"Workflow {workflow.name!r} has no published version {version!r}.")
    return found


def draft_get(*, workflow: Workflow) -> WorkflowVersion:
    draft = workflow.versions.filter(state=VersionState.DRAFT).first()
    if draft is None:
        raise NotFound(f"Workflow {workflow.name!r} has no draft.", code="no_draft")
    return draft


def snapshot_get(*, user: Any, digest: str) -> bytes:
    """The exact canonical bytes whose sha256 is ``digest``, if the caller's tenant has them."""
    row = (
        WorkflowVersion.objects.filter(
            workflow__tenant=tenant_for_user(user), state=VersionState.PUBLISHED, digest=digest
        )
        .values_list("canonical", flat=True)
        .first()
    )
    if row is None:
        raise NotFound(f"No snapshot sha256:{digest}.")
    return bytes(row)
