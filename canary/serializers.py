"""Input and output shapes of the canary API and webhook."""

from __future__ import annotations

from rest_framework import serializers

from canary.choices import CanaryStrategy
from canary.models import CanaryEvent, CanaryRelease
from mc_project.serializers import StrictSerializer


class CanaryCreateInput(StrictSerializer):
    workflow = serializers.CharField(max_length=64, help_text="the workflow's id or name")
    canary_version = serializers.CharField(
        max_length=128, required=False, help_text="default: the latest published version"
    )
    stable_version = serializers.CharField(
        max_length=128, required=False, help_text="default: the published version before the canary"
    )
    strategy = serializers.ChoiceField(choices=CanaryStrategy.choices, default=CanaryStrategy.CANARY)
    weight = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="default: 10 (canary), 100 (blue_green)"
    )
    max_error_rate_pct = serializers.FloatField(min_value=0, max_value=100, required=False)
    max_p95_ms = serializers.IntegerField(min_value=1, max_value=86_400_000, required=False)
    min_sample = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    analysis_window_s = serializers.IntegerField(min_value=1, max_value=30 * 86_400, required=False)
    error_budget_minutes = serializers.IntegerField(min_value=0, max_value=525_600, required=False)
    weight_steps = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100),
        max_length=20,
        required=False,
        help_text="weights to step up through, one per analysis window that holds; default: promote at once",
    )


class CanaryActionInput(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CanaryOutput(serializers.ModelSerializer):
    workflow = serializers.UUIDField(source="workflow_id")
    workflow_name = serializers.CharField(source="workflow.name")
    stable_version = serializers.CharField(source="stable_version.version")
    canary_version = serializers.CharField(source="canary_version.version")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = CanaryRelease
        fields = [
            "id",
            "workflow",
            "workflow_name",
            "stable_version",
            "canary_version",
            "strategy",
            "weight",
            "state",
            "max_error_rate_pct",
            "max_p95_ms",
            "min_sample",
            "analysis_window_s",
            "error_budget_minutes",
            "weight_steps",
            "stage_started_at",
            "analysis",
            "analysed_at",
            "reason",
            "created_by",
            "created_at",
            "updated_at",
            "paused_at",
            "ended_at",
        ]


class CanaryEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)

    class Meta:
        model = CanaryEvent
        fields = ["id", "kind", "trigger", "state", "weight", "reason", "figures", "actor", "created_at"]


class WebhookInput(StrictSerializer):
    """``{"breach": true, "tenant": "acme", "workflow": "checkout", "reason": "p95 over budget"}``."""

    breach = serializers.BooleanField()
    tenant = serializers.SlugField(max_length=63)
    workflow = serializers.CharField(max_length=64, help_text="the workflow's id or name")
    reason = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")
    sender = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    metrics = serializers.DictField(required=False, help_text="the figures that breached, kept in the reason")
