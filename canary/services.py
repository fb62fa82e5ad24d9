"""Writes for canary releases: start one, pause, resume, promote, roll back; webhook deliveries.

Each public function is one transaction and changes state only through
``canary.transitions.canary_transition``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from canary.choices import ACTIVE_STATES, DEFAULT_WEIGHT, WEBHOOK_TOLERANCE_S, CanaryState, CanaryStrategy
from canary.models import CanaryRelease, WebhookDelivery
from canary.transitions import canary_transition
from mc_project.errors import ApplicationError, Conflict, NotFound, ValidationFailed
from workflows.models import Workflow, WorkflowVersion
from workflows.services import latest_published

BUDGET_FIELDS = ("max_error_rate_pct", "max_p95_ms", "min_sample", "analysis_window_s", "error_budget_minutes")


def _check_version(version: WorkflowVersion, *, workflow: Workflow, path: str) -> None:
    if version.workflow_id != workflow.pk:
        raise ValidationFailed(
            "Both versions must belong to the release's workflow.",
            details=[{"path": path, "message": f"is a version of another workflow, not {workflow.name!r}"}],
        )
    if not version.is_published:
        raise ValidationFailed(
            "Only published versions can be released.", details=[{"path": path, "message": "is not published"}]
        )


def _weight(strategy: str, weight: int | None) -> int:
    if weight is None:
        return DEFAULT_WEIGHT[CanaryStrategy(strategy)]
    if strategy == CanaryStrategy.BLUE_GREEN and weight != 100:
        raise ValidationFailed(
            "A blue/green release switches all traffic at once.",
            details=[{"path": "/weight", "message": "must be 100 (or left out) with strategy blue_green"}],
        )
    return weight


@transaction.atomic
def canary_create(
    *,
    workflow: Workflow,
    stable_version: WorkflowVersion,
    canary_version: WorkflowVersion,
    actor: Any,
    strategy: str = CanaryStrategy.CANARY,
    weight: int | None = None,
    **budgets: Any,
) -> CanaryRelease:
    """Start routing unpinned executions of ``workflow`` between the two published versions.

    A workflow has at most one running or paused release (409 ``canary_active``).
    """
    _check_version(stable_version, workflow=workflow, path="/stable_version")
    _check_version(canary_version, workflow=workflow, path="/canary_version")
    if stable_version.pk == canary_version.pk:
        raise ValidationFailed(
            "The canary and the stable version must differ.",
            details=[{"path": "/canary_version", "message": "is the stable version"}],
        )
    unknown = sorted(set(budgets) - set(BUDGET_FIELDS))
    if unknown:
        raise TypeError(f"unknown budgets: {unknown}")
    release = CanaryRelease(
        workflow=workflow,
        stable_version=stable_version,
        canary_version=canary_version,
        strategy=strategy,
        weight=_weight(strategy, weight),
        created_by=actor,
        **budgets,
    )
    try:
        with transaction.atomic():
            release.save()
    except IntegrityError:
        active = _active(workflow)
        if active is None:
            raise
        raise _active_conflict(active) from None
    return release


def _active_conflict(active: CanaryRelease) -> Conflict:
    return Conflict(
        f"Workflow {active.workflow.name!r} already has a {active.state} release (#{active.pk}); "
        "promote or roll it back first.",
        code="canary_active",
        details=[{"path": "/workflow", "message": f"release {active.pk} is {active.state}"}],
    )


def _active(workflow: Workflow) -> CanaryRelease | None:
    return CanaryRelease.objects.filter(workflow=workflow, state__in=ACTIVE_STATES).first()


def _locked(release: CanaryRelease) -> CanaryRelease:
    return CanaryRelease.objects.select_for_update().select_related("workflow").get(pk=release.pk)


@transaction.atomic
def canary_pause(*, release: CanaryRelease, actor: Any, reason: str = "") -> CanaryRelease:
    """Send all traffic to the stable version until resumed."""
    return canary_transition(_locked(release), CanaryState.PAUSED, actor=actor, reason=reason, paused_at=timezone.now())


@transaction.atomic
def canary_resume(*, release: CanaryRelease, actor: Any, reason: str = "") -> CanaryRelease:
    """Route by weight (or switch, for blue/green) again."""
    return canary_transition(_locked(release), CanaryState.RUNNING, actor=actor, reason=reason, paused_at=None)


@transaction.atomic
def canary_promote(*, release: CanaryRelease, actor: Any, reason: str = "") -> CanaryRelease:
    """Make the canary the stable version: routing ends and the latest published version runs."""
    return canary_transition(
        _locked(release), CanaryState.PROMOTED, actor=actor, reason=reason, weight=100, ended_at=timezone.now()
    )


@transaction.atomic
def canary_rollback(*, release: CanaryRelease, actor: Any, reason: str = "") -> CanaryRelease:
    """Weight to 0 and every unpinned execution to the stable version, at once."""
    return canary_transition(
        _locked(release), CanaryState.ROLLED_BACK, actor=actor, reason=reason, weight=0, ended_at=timezone.now()
    )


@transaction.atomic
def workflow_rollback(
    *, workflow: Workflow, actor: Any, reason: str = "", to: WorkflowVersion | None = None
) -> CanaryRelease:
    """Roll back the workflow's running or paused release; with ``to``, route all traffic to that version.

    ``to`` ends any active release and records a new rolled-back release from the latest
    published version to ``to``: unpinned executions run ``to`` until a newer version is
    published or a new release starts.
    """
    active = CanaryRelease.objects.select_for_update().filter(workflow=workflow, state__in=ACTIVE_STATES).first()
    if to is None:
        if active is None:
            raise NotFound(
                f"Workflow {workflow.name!r} has no running or paused release to roll back.", code="no_active_release"
            )
        return canary_rollback(release=active, actor=actor, reason=reason)
    _check_version(to, workflow=workflow, path="/to")
    latest = latest_published(workflow)
    if latest is None or latest.pk == to.pk:
        raise Conflict(
            f"Version {to.version} is already the latest published version; there is nothing to roll back.",
            code="rollback_target_is_latest",
            details=[{"path": "/to", "message": "is the latest published version"}],
        )
    if active is not None:
        canary_rollback(release=active, actor=actor, reason=reason)
    now = timezone.now()
    release = CanaryRelease.objects.create(
        workflow=workflow,
        stable_version=to,
        canary_version=latest,
        weight=0,
        state=CanaryState.ROLLED_BACK,
        reason=reason[:500],
        created_by=actor,
        ended_at=now,
    )
    return release


def webhook_delivery_record(*, signature: str, timestamp: int) -> None:
    """Remember an accepted signature until its timestamp is out of the window; a replay is a 401.

    Called inside the transaction that acts on the delivery, so a refused request leaves
    nothing behind, and of two racing copies exactly one inserts.
    """
    now = timezone.now()
    WebhookDelivery.objects.filter(expires_at__lt=now).delete()
    expires = datetime.fromtimestamp(timestamp, tz=UTC) + timedelta(seconds=WEBHOOK_TOLERANCE_S)
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(signature=signature, expires_at=max(expires, now))
    except IntegrityError:
        raise ApplicationError(
            "This signed request was seen before (a replay).", code="webhook_replayed", status=401
        ) from None


@transaction.atomic
def webhook_breach(
    *, signature: str, timestamp: int, breach: bool, tenant_slug: str, workflow_ref: str, reason: str
) -> CanaryRelease | None:
    """Act on a verified webhook delivery: a breach rolls back the workflow's active release.

    One transaction with the record of the delivery: a replay, an unknown workflow or a
    workflow with nothing to roll back leaves no trace, and a retry can still succeed.
    """
    webhook_delivery_record(signature=signature, timestamp=timestamp)
    workflow = _workflow_of_tenant(tenant_slug=tenant_slug, ref=workflow_ref)
    if not breach:
        return None
    return workflow_rollback(workflow=workflow, actor=None, reason=reason)


def _workflow_of_tenant(*, tenant_slug: str, ref: str) -> Workflow:
    workflows = Workflow.objects.filter(tenant__slug=tenant_slug)
    try:
        found = workflows.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        found = workflows.filter(name=ref).first()
    if found is None:
        raise NotFound(
            f"Tenant {tenant_slug!r} has no workflow {ref!r}.",
            details=[{"path": "/workflow", "message": "no such workflow in this tenant"}],
        )
    return found
