"""Reads of workflows, always scoped to the caller's tenant: another tenant's object is a 404."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any, cast

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from mc_project.errors import NotFound
from mc_project.tenancy.selectors import tenant_for_user
from workflows.choices import VersionState
from workflows.models import Workflow, WorkflowVersion


def workflow_list(*, user: Any) -> QuerySet[Workflow]:
    """The caller's workflows, annotated with ``has_draft``, ``latest_version`` and its pk (no N+1)."""
    versions = WorkflowVersion.objects.filter(workflow=OuterRef("pk"))
    latest = versions.filter(state=VersionState.PUBLISHED).order_by("-published_at", "-id")
    return Workflow.objects.filter(tenant=tenant_for_user(user)).annotate(
        has_draft=Exists(versions.filter(state=VersionState.DRAFT)),
        latest_version=Subquery(latest.values("version")[:1]),
        latest_version_pk=Subquery(latest.values("pk")[:1]),
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


# Published versions never change (a database trigger refuses it) and are never deleted, so
# each process keeps the ones it ran: starting a run reads no version row after the first.
PUBLISHED_CACHE_SIZE = 512
_published: OrderedDict[Any, WorkflowVersion] = OrderedDict()
_published_lock = threading.Lock()


def published_version(*, workflow: Workflow, version: str | None = None, pk: int | None = None) -> WorkflowVersion:
    """A published version of ``workflow`` by its number or its pk, from this process's cache.

    Raises NotFound when there is none. The row is read once per process.
    """
    key = (workflow.pk, version, pk)
    with _published_lock:
        found = _published.get(key)
        if found is not None:
            _published.move_to_end(key)
            return found
    rows = WorkflowVersion.objects.filter(workflow=workflow, state=VersionState.PUBLISHED)
    found = rows.filter(version=version).first() if version is not None else rows.filter(pk=pk or 0).first()
    if found is None:
        raise NotFound(f"Workflow {workflow.name!r} has no published version {version or pk!r}.")
    with _published_lock:
        _published[key] = found
        while len(_published) > PUBLISHED_CACHE_SIZE:
            _published.popitem(last=False)
    return found


def latest_published_pk(workflow: Workflow) -> int | None:
    """The pk of the workflow's latest published version: as ``workflow_list`` read it, or asked now."""
    if hasattr(workflow, "latest_version_pk"):
        return cast(int | None, workflow.latest_version_pk)
    return (
        WorkflowVersion.objects.filter(workflow=workflow, state=VersionState.PUBLISHED)
        .order_by("-published_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )


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
