"""Shapes of the policy API."""

from __future__ import annotations

from rest_framework import serializers

from mc_project.serializers import StrictSerializer
from policy.models import PolicyBundle, PolicyDecision


class DecisionOutput(serializers.ModelSerializer):
    workflow = serializers.CharField(source="workflow_version.workflow.name", default=None, allow_null=True)
    version = serializers.CharField(source="workflow_version.version", default=None, allow_null=True)
    execution = serializers.UUIDField(source="execution_id", allow_null=True)

    class Meta:
        model = PolicyDecision
        fields = [
            "id",
            "stage",
            "pack",
            "result",
            "mode",
            "revision",
            "bundle_digest",
            "input_digest",
            "deny",
            "warn",
            "duration_ms",
            "workflow",
            "version",
            "execution",
            "created_at",
        ]


class BundleOutput(serializers.ModelSerializer):
    class Meta:
        model = PolicyBundle
        fields = ["id", "pack", "revision", "digest", "roots", "active", "created_at"]


class BundleUploadInput(StrictSerializer):
    pack = serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$")
    files = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        help_text="path -> content: .manifest, *.rego, data.json",
    )
