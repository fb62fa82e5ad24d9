"""Input and output shapes of the workflows API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.serializers import PlanInput
from mc_project.serializers import StrictSerializer
from workflows.choices import Bump
from workflows.manifest import parse_manifest
from workflows.models import Workflow, WorkflowVersion


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {}, "description": "the manifest document"},
            {"type": "string", "description": "the manifest as YAML or JSON text"},
        ]
    }
)
class ManifestField(serializers.Field):
    """A manifest given as a JSON object, or as YAML/JSON text (parsed safely)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            return parse_manifest(data)
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class WorkflowCreateInput(StrictSerializer):
    manifest = ManifestField()
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class WorkflowUpdateInput(StrictSerializer):
    description = serializers.CharField(allow_blank=True, max_length=2000)


class DraftInput(StrictSerializer):
    manifest = ManifestField()


class ManifestPlanInput(PlanInput):
    """What a published version's plan takes (``inputs``, ``region``), and the manifest to plan."""

    manifest = ManifestField()


class PublishInput(StrictSerializer):
    bump = serializers.ChoiceField(choices=Bump.choices, required=False)
    version = serializers.CharField(required=False, max_length=128)


class VersionOutput(serializers.ModelSerializer):
    digest = serializers.CharField(source="snapshot_ref", allow_null=True)
    published_by = serializers.CharField(source="published_by.username", allow_null=True, default=None)
    workflow = serializers.UUIDField(source="workflow_id")

    class Meta:
        model = WorkflowVersion
        fields = ["workflow", "version", "state", "digest", "published_at", "published_by", "created_at", "updated_at"]


class VersionDetailOutput(VersionOutput):
    class Meta(VersionOutput.Meta):
        fields = [*VersionOutput.Meta.fields, "manifest"]


class WorkflowOutput(serializers.ModelSerializer):
    has_draft = serializers.BooleanField(read_only=True)
    latest_version = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "has_draft", "latest_version", "created_at", "updated_at"]


class PublishOutput(serializers.Serializer):
    version = VersionOutput()
    receipt_id = serializers.UUIDField()
