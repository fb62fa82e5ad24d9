"""Writes for canary releases: start one, pause, resume, step up, promote, roll back; webhook deliveries.

Each public function is one transaction and changes state only through
``canary.transitions.canary_transition``, which records an event. Every rollback,
automatic or by hand, also records a rollback receipt (signed after commit) and counts
``mc_canary_rollbacks_total``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from canary.analysis import Analysis, release_analyse
from canary.choices import (
    ACTIVE_STATES,
    DEFAULT_WEIGHT,
    WEBHOOK_TOLERANCE_S,
    CanaryEventKind,
    CanaryState,
    CanaryStrategy,
    Trigger,
    Verdict,
)
from canary.models import CanaryRelease, WebhookDelivery, weight_steps_problem
from canary.transitions import canary_event_record, canary_transition
from mc_project.errors import ApplicationError, Conflict, NotFound, ValidationFailed
from mc_project.metrics import canary_rolled_back_counted
from receipts.services import rollback_record_create
from workflows.models import Workflow, WorkflowVersion
from workflows.services import latest_published

logger = logging.getLogger(__name__)

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
        if strategy == CanaryStrategy.CANARY:
            return int(settings.MC_CANARY_DEFAULTS["weight"])
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
    weight_steps: list[int] | None = None,
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
    if not settings.MC_CANARY_ENABLED:
        raise Conflict(
            "Canary releases are turned off here (MC_CANARY_ENABLED=false).",
            code="canary_disabled",
            details=[{"path": "", "message": "no new release can start; running ones go on"}],
        )
    # Figures the request leaves out come from the deployment's defaults (MC_CANARY_*).
    defaults = {name: value for name, value in settings.MC_CANARY_DEFAULTS.items() if name in BUDGET_FIELDS}
    budgets = {**defaults, **{name: value for name, value in budgets.items() if value is not None}}
    weight = _weight(strategy, weight)
    steps = list(weight_steps or [])
    problem = weight_steps_problem(steps, weight=weight, strategy=strategy)
    if problem:
        raise ValidationFailed(
            "The weight steps do not fit the release.", details=[{"path": "/weight_steps", "message": problem}]
        )
    release = CanaryRelease(
        workflow=workflow,
        stable_version=stable_version,
        canary_version=canary_version,
        strategy=strategy,
        weight=weight,
        weight_steps=steps,
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
    canary_event_record(release, CanaryEventKind.STARTED, actor=actor, reason=f"{strategy} at weight {weight}")
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
    """Route by weight (or switch, for blue/green) again; the analysis window starts afresh."""
    now = timezone.now()
    return canary_transition(
        _locked(release), CanaryState.RUNNING, actor=actor, reason=reason, paused_at=None, stage_started_at=now
    )


@transaction.atomic
def canary_step_up(
    *, release: CanaryRelease, weight: int, reason: str = "", figures: dict[str, Any] | None = None
) -> CanaryRelease:
    """Raise a running canary's weight to its next step; the analysis window starts afresh."""
    locked = _locked(release)
    if locked.state != CanaryState.RUNNING or not locked.weight < weight <= 100:
        raise Conflict(
            f"A {locked.state} release at weight {locked.weight} cannot step to {weight}.",
            code="canary_transition_illegal",
            details=[{"path": "/weight", "message": f"{locked.weight} -> {weight} is not allowed"}],
        )
    locked.weight = weight
    locked.stage_started_at = timezone.now()
    locked.reason = reason[:500]
    locked.save(update_fields=["weight", "stage_started_at", "reason", "updated_at"])
    canary_event_record(locked, CanaryEventKind.STEPPED, reason=reason, trigger=Trigger.ANALYSIS, figures=figures)
    return locked


@transaction.atomic
def canary_promote(
    *,
    release: CanaryRelease,
    actor: Any,
    reason: str = "",
    trigger: str = Trigger.MANUAL,
    figures: dict[str, Any] | None = None,
) -> CanaryRelease:
    """Make the canary the stable version: routing ends and the latest published version runs."""
    return canary_transition(
        _locked(release),
        CanaryState.PROMOTED,
        actor=actor,
        reason=reason,
        trigger=trigger,
        figures=figures,
        weight=100,
        ended_at=timezone.now(),
    )


@transaction.atomic
def canary_rollback(
    *,
    release: CanaryRelease,
    actor: Any,
    reason: str = "",
    trigger: str = Trigger.MANUAL,
    figures: dict[str, Any] | None = None,
) -> CanaryRelease:
    """Weight to 0 and every unpinned execution to the stable version, at once; a signed receipt says so."""
    release = canary_transition(
        _locked(release),
        CanaryState.ROLLED_BACK,
        actor=actor,
        reason=reason,
        trigger=trigger,
        figures=figures,
        weight=0,
        ended_at=timezone.now(),
    )
    _rollback_recorded(release, actor=actor, reason=reason, trigger=trigger, figures=figures)
    return release


def _rollback_recorded(
    release: CanaryRelease, *, actor: Any, reason: str, trigger: str, figures: dict[str, Any] | None
) -> None:
    rollback_record_create(release=release, actor=actor, reason=reason, trigger=trigger, figures=figures)
    canary_rolled_back_counted(tenant=release.workflow.tenant.slug, workflow=release.workflow.name, trigger=trigger)


@transaction.atomic
def workflow_rollback(
    *,
    workflow: Workflow,
    actor: Any,
    reason: str = "",
    to: WorkflowVersion | None = None,
    trigger: str = Trigger.MANUAL,
    figures: dict[str, Any] | None = None,
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
        return canary_rollback(release=active, actor=actor, reason=reason, trigger=trigger, figures=figures)
    _check_version(to, workflow=workflow, path="/to")
    latest = latest_published(workflow)
    if latest is None or latest.pk == to.pk:
        raise Conflict(
            f"Version {to.version} is already the latest published version; there is nothing to roll back.",
            code="rollback_target_is_latest",
            details=[{"path": "/to", "message": "is the latest published version"}],
        )
    if active is not None:
        canary_rollback(release=active, actor=actor, reason=reason, trigger=trigger, figures=figures)
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
    canary_event_record(
        release, CanaryEventKind.ROLLED_BACK, actor=actor, reason=reason, trigger=trigger, figures=figures
    )
    _rollback_recorded(release, actor=actor, reason=reason, trigger=trigger, figures=figures)
    return release


def canary_analyse(*, release_id: int, now: datetime | None = None) -> Analysis | None:
    """Analyse a running release and act on the verdict: roll back, step up or promote.

    Measures without a lock, then acts under the release's row lock only if the release is
    still in the stage it was measured in (two analyses racing act once). Returns the
    analysis, or None when the release is not running (or changed meanwhile).
    """
    release = CanaryRelease.objects.select_related("workflow").filter(pk=release_id).first()
    if release is None or release.state != CanaryState.RUNNING:
        return None
    analysis = release_analyse(release, now=now or timezone.now())
    decision = analysis.decision
    with transaction.atomic():
        locked = _locked(release)
        measured = (release.state, release.weight, release.stage_started_at)
        if (locked.state, locked.weight, locked.stage_started_at) != measured:
            return None  # the next analysis measures the new stage
        figures = analysis.as_dict()
        locked.analysis, locked.analysed_at = figures, analysis.at
        locked.save(update_fields=["analysis", "analysed_at"])
        if decision.verdict == Verdict.ROLLBACK:
            canary_rollback(
                release=locked, actor=None, reason=decision.reason, trigger=Trigger.ANALYSIS, figures=figures
            )
        elif decision.verdict == Verdict.STEP and decision.weight is not None:
            canary_step_up(release=locked, weight=decision.weight, reason=decision.reason, figures=figures)
        elif decision.verdict == Verdict.PROMOTE:
            canary_promote(
                release=locked, actor=None, reason=decision.reason, trigger=Trigger.ANALYSIS, figures=figures
            )
    if decision.verdict != Verdict.HOLD:
        log = logger.warning if decision.verdict == Verdict.ROLLBACK else logger.info
        log("canary release %s of %s: %s (%s)", release.pk, release.workflow.name, decision.verdict, decision.reason)
    return analysis


def canary_analyse_running() -> int:
    """Analyse every running release (the beat: promotes quiet canaries, catches lost messages)."""
    analysed = 0
    for release_id in CanaryRelease.objects.filter(state=CanaryState.RUNNING).values_list("pk", flat=True):
        try:
            analysed += canary_analyse(release_id=release_id) is not None
        except Exception:  # one release must not stop the others; the next beat tries again
            logger.exception("could not analyse canary release %s", release_id)
    return analysed


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
    *,
    signature: str,
    timestamp: int,
    breach: bool,
    tenant_slug: str,
    workflow_ref: str,
    reason: str,
    figures: dict[str, Any] | None = None,
) -> CanaryRelease | None:
    """Act on a verified webhook delivery: a breach rolls back the workflow's active release.

    One transaction with the record of the delivery: a replay, an unknown workflow or a
    workflow with nothing to roll back leaves no trace, and a retry can still succeed.
    """
    webhook_delivery_record(signature=signature, timestamp=timestamp)
    workflow = _workflow_of_tenant(tenant_slug=tenant_slug, ref=workflow_ref)
    if not breach:
        return None
    return workflow_rollback(workflow=workflow, actor=None, reason=reason, trigger=Trigger.WEBHOOK, figures=figures)


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
