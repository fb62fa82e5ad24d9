"""Canary releases of workflow versions, and the webhook deliveries already seen."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from canary import choices as c
from canary.choices import CanaryEventKind, CanaryState, CanaryStrategy, Trigger


class CanaryRelease(models.Model):
    """A measured rollout of ``canary_version`` beside ``stable_version`` of one workflow.

    While running, executions that pin no version are routed between the two: a share of
    ``weight`` percent to the canary (strategy ``canary``) or all of it (``blue_green``,
    the stable version kept for an instant switch back). Paused and rolled back route all
    to stable; promoted routes nothing (the latest published version runs). The budgets
    are what analysis holds the canary arm to. At most one release per workflow is
    running or paused; states change only through ``canary.transitions``.
    """

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.PROTECT, related_name="canary_releases")
    stable_version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="+")
    canary_version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="+")
    strategy = models.CharField(max_length=16, choices=CanaryStrategy.choices, default=CanaryStrategy.CANARY)
    weight = models.PositiveSmallIntegerField(
        default=c.DEFAULT_WEIGHT[CanaryStrategy.CANARY],
        validators=[MaxValueValidator(100)],
        help_text="percent of unpinned executions routed to the canary",
    )
    state = models.CharField(max_length=16, choices=CanaryState.choices, default=CanaryState.RUNNING)
    max_error_rate_pct = models.FloatField(
        default=c.DEFAULT_MAX_ERROR_RATE_PCT, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    max_p95_ms = models.PositiveIntegerField(default=c.DEFAULT_MAX_P95_MS, validators=[MinValueValidator(1)])
    min_sample = models.PositiveIntegerField(
        default=c.DEFAULT_MIN_SAMPLE,
        validators=[MinValueValidator(1)],
        help_text="canary executions needed before any verdict (no traffic is not success)",
    )
    analysis_window_s = models.PositiveIntegerField(
        default=c.DEFAULT_ANALYSIS_WINDOW_S, validators=[MinValueValidator(1)]
    )
    error_budget_minutes = models.PositiveIntegerField(
        default=c.DEFAULT_ERROR_BUDGET_MINUTES,
        help_text="minutes the canary arm may spend over its error-rate budget before it is rolled back (0: off)",
    )
    weight_steps = models.JSONField(
        default=list,
        blank=True,
        help_text="weights to step up through, one per window that holds; empty: promote after the first",
    )
    stage_started_at = models.DateTimeField(
        default=timezone.now, help_text="start of the current stage: creation, resume or the last weight step"
    )
    analysis = models.JSONField(null=True, blank=True, help_text="the last analysis: each arm's figures, the verdict")
    analysed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="", help_text="why it was last paused or ended")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="promoted or rolled back at")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Routing reads the newest release of a workflow at every unpinned execution.
            models.Index(fields=["workflow", "-created_at", "-id"], name="canary_workflow_newest"),
            models.Index(fields=["state"], name="canary_state"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow"],
                condition=Q(state__in=[CanaryState.RUNNING, CanaryState.PAUSED]),
                name="canary_one_active_per_workflow",
            ),
            models.CheckConstraint(condition=Q(weight__gte=0, weight__lte=100), name="canary_weight_percent"),
            models.CheckConstraint(
                condition=~Q(stable_version=models.F("canary_version")), name="canary_versions_differ"
            ),
            models.CheckConstraint(
                condition=~Q(state=CanaryState.ROLLED_BACK) | Q(weight=0), name="canary_rolled_back_weight_zero"
            ),
            models.CheckConstraint(
                condition=Q(max_error_rate_pct__gte=0, max_error_rate_pct__lte=100), name="canary_error_rate_percent"
            ),
            models.CheckConstraint(
                condition=Q(min_sample__gte=1, analysis_window_s__gte=1, max_p95_ms__gte=1),
                name="canary_budgets_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.stable_version.version} -> {self.canary_version.version} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in c.ACTIVE_STATES

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        for name in ("stable_version", "canary_version"):
            version = getattr(self, name, None) if getattr(self, f"{name}_id", None) else None
            if version is None:
                continue
            if not version.is_published:
                errors[name] = "must be a published version"
            elif version.workflow_id != self.workflow_id:
                errors[name] = "must be a version of the release's workflow"
        if self.stable_version_id and self.stable_version_id == self.canary_version_id:
            errors["canary_version"] = "must differ from the stable version"
        problem = weight_steps_problem(self.weight_steps, weight=self.weight, strategy=self.strategy)
        if problem:
            errors["weight_steps"] = problem
        if errors:
            raise ValidationError(errors)


def weight_steps_problem(steps: Any, *, weight: int, strategy: str) -> str | None:
    """What is wrong with ``steps`` for a release at ``weight``, or None."""
    if not steps:
        return None
    if strategy == CanaryStrategy.BLUE_GREEN:
        return "a blue/green release switches all traffic at once: it takes no weight steps"
    if not isinstance(steps, list) or not all(isinstance(step, int) and not isinstance(step, bool) for step in steps):
        return "must be a list of whole percentages"
    previous = weight
    for step in steps:
        if not previous < step <= 100:
            return f"must rise from the weight ({weight}) to at most 100, each step above the one before"
        previous = step
    return None


class CanaryEvent(models.Model):
    """One thing that happened to a release: started, paused, resumed, stepped, promoted, rolled back.

    Written in the transaction that made the change, with who or what made it and, for a
    verdict of the analysis, the figures it was based on.
    """

    release = models.ForeignKey(CanaryRelease, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=CanaryEventKind.choices)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    state = models.CharField(max_length=16, choices=CanaryState.choices, help_text="the release's state after it")
    weight = models.PositiveSmallIntegerField(help_text="the release's weight after it")
    reason = models.CharField(max_length=500, blank=True, default="")
    figures = models.JSONField(null=True, blank=True, help_text="the analysis behind an automatic change")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["release", "created_at"], name="canary_event_release")]

    def __str__(self) -> str:
        return f"release {self.release_id}: {self.kind} ({self.trigger})"


class WebhookDelivery(models.Model):
    """A signature the canary webhook accepted, kept until its timestamp leaves the window.

    Its primary key makes a replay of the same signed request fail to insert, also when
    two copies race.
    """

    signature = models.CharField(max_length=64, primary_key=True)
    received_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return self.signature[:12]
