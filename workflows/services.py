"""Writes for workflows: create, edit the draft, publish.

Every function here is one transaction. Manifests are validated on every save; a
published version is never written again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import semver
from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.packages.registry import package_problems
from mc_project.errors import Conflict, ValidationFailed
from mc_project.tenancy.models import Tenant
from receipts.models import Receipt
from receipts.services import publish_record_create
from workflows.choices import Bump, VersionState
from workflows.manifest import canonical_json, check_manifest, sha256_digest
from workflows.models import Workflow, WorkflowVersion


def _checked(manifest: Any) -> dict[str, Any]:
    """The manifest if valid: schema, semantics, and every ``uses``/``with``/expression against the packages."""
    return check_manifest(manifest, extra_checks=[package_problems])


@dataclass(frozen=True)
class PublishResult:
    version: WorkflowVersion
    receipt: Receipt


@transaction.atomic
def workflow_create(*, tenant: Tenant, actor: Any, manifest: Any, description: str | None = None) -> Workflow:
    """Create a workflow named by its manifest, with that manifest as its first draft."""
    doc = _checked(manifest)
    name = doc["name"]
    exists = Conflict(f"A workflow named {name!r} already exists; update its draft instead.", code="workflow_exists")
    if Workflow.objects.filter(tenant=tenant, name=name).exists():
        raise exists
    try:
        # A concurrent create of the same name passes the check above too; the unique
        # index decides, and the loser gets the same 409 (in a savepoint, so the
        # transaction stays usable for the check below).
        with transaction.atomic():
            workflow = Workflow.objects.create(
                tenant=tenant,
                name=name,
                description=doc.get("description", "") if description is None else description,
                created_by=actor,
            )
    except IntegrityError:
        if Workflow.objects.filter(tenant=tenant, name=name).exists():
            raise exists from None
        raise
    WorkflowVersion.objects.create(workflow=workflow, manifest=doc, created_by=actor)
    return workflow


@transaction.atomic
def workflow_update(*, workflow: Workflow, description: str) -> Workflow:
    workflow.description = description
    workflow.save(update_fields=["description", "updated_at"])
    return workflow


def _lock(workflow: Workflow) -> Workflow:
    """Serialise writers of one workflow's versions on its row."""
    return Workflow.objects.select_for_update().get(pk=workflow.pk)


@transaction.atomic
def draft_save(*, workflow: Workflow, actor: Any, manifest: Any) -> WorkflowVersion:
    """Replace the draft's manifest, or start a new draft after a publish."""
    doc = _checked(manifest)
    if doc["name"] != workflow.name:
        raise ValidationFailed(
            "The manifest's name must stay the workflow's name.",
            code="manifest_invalid",
            details=[{"path": "/name", "message": f"must be {workflow.name!r}; create a new workflow to rename"}],
        )
    _lock(workflow)
    draft = workflow.versions.filter(state=VersionState.DRAFT).first()
    if draft is None:
        return WorkflowVersion.objects.create(workflow=workflow, manifest=doc, created_by=actor)
    draft.manifest = doc
    draft.save(update_fields=["manifest", "updated_at"])
    return draft


@transaction.atomic
def draft_discard(*, workflow: Workflow) -> None:
    _lock(workflow)
    deleted, _ = workflow.versions.filter(state=VersionState.DRAFT).delete()
    if not deleted:
        raise Conflict("This workflow has no draft.", code="no_draft")


def latest_published(workflow: Workflow) -> WorkflowVersion | None:
    # Each published version is greater than the one before, so publish order is semver order.
    return workflow.versions.filter(state=VersionState.PUBLISHED).order_by("-published_at", "-id").first()


def next_version(*, last: str | None, proposed: str, bump: str | None, explicit: str | None) -> str:
    """The version a publish assigns.

    An explicit version must parse and exceed the last published one. Otherwise the first
    publish takes the manifest's own version, and later ones bump the last published.
    """
    if explicit is not None and bump is not None:
        raise ValidationFailed(
            "Give either 'bump' or 'version', not both.",
            details=[{"path": "/version", "message": "conflicts with bump"}],
        )
    if explicit is not None:
        try:
            wanted = semver.Version.parse(explicit)
        except ValueError:
            raise ValidationFailed(
                "Not a semantic version.", details=[{"path": "/version", "message": f"{explicit!r} is not semver"}]
            ) from None
        if last is not None and wanted <= semver.Version.parse(last):
            raise Conflict(
                f"Version {explicit} is not greater than the last published version {last}.",
                code="version_not_greater",
                details=[{"path": "/version", "message": f"must be greater than {last}"}],
            )
        return str(wanted)
    if last is None:
        return proposed
    return str(semver.Version.parse(last).next_version(part=bump or Bump.PATCH))


def workflow_publish(
    *, workflow: Workflow, actor: Any, bump: str | None = None, version: str | None = None
) -> PublishResult:
    """Freeze the draft as the next semver version, content-addressed by its sha256.

    The static policy packs (residency, pii) decide first; their decisions are stored
    even when they deny (403 ``policy_denied``), and the draft stays a draft.
    """
    draft = workflow.versions.filter(state=VersionState.DRAFT).first()
    if draft is not None:
        _publish_policy_check(workflow=workflow, draft=draft, actor=actor)
    return _publish_locked(workflow=workflow, actor=actor, bump=bump, version=version)


def _publish_policy_check(*, workflow: Workflow, draft: WorkflowVersion, actor: Any) -> None:
    from executions.planner import plan_build
    from policy.choices import STATIC_PACKS, DecisionStage
    from policy.services import policies_evaluate, policy_enforce

    doc = draft.manifest  # validated when saved; _publish_locked checks it again under the lock
    decisions = policies_evaluate(
        stage=DecisionStage.PUBLISH,
        tenant=workflow.tenant,
        actor=actor,
        manifest=doc,
        plan=plan_build(doc).as_dict(),
        mode="run",
        region=doc.get("region", ""),
        packs=STATIC_PACKS,
        workflow_version=draft,
    )
    policy_enforce(decisions)


@transaction.atomic
def _publish_locked(
    *, workflow: Workflow, actor: Any, bump: str | None = None, version: str | None = None
) -> PublishResult:
    _lock(workflow)
    draft = workflow.versions.filter(state=VersionState.DRAFT).first()
    if draft is None:
        raise Conflict("This workflow has no draft to publish.", code="no_draft")
    doc = _checked(draft.manifest)
    last = latest_published(workflow)
    number = next_version(last=last.version if last else None, proposed=doc["version"], bump=bump, explicit=version)
    frozen = {**doc, "version": number}
    canonical = canonical_json(frozen)
    draft.state = VersionState.PUBLISHED
    draft.version = number
    draft.manifest = frozen
    draft.canonical = canonical
    draft.digest = sha256_digest(canonical)
    draft.published_at = timezone.now()
    draft.published_by = actor
    try:
        with transaction.atomic():
            draft.save(
                update_fields=[
                    "state",
                    "version",
                    "manifest",
                    "canonical",
                    "digest",
                    "published_at",
                    "published_by",
                    "updated_at",
                ]
            )
    except IntegrityError:
        raise Conflict(f"Version {number} is already published.", code="version_exists") from None
    receipt = publish_record_create(version=draft, actor=actor)
    return PublishResult(version=draft, receipt=receipt)
