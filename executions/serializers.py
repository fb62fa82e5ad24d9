"""Input and output shapes of the executions API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.choices import ExecutionMode
from executions.models import Execution, StepRun
from mc_project.serializers import StrictSerializer


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.Field):
    """Any JSON object (the shape is checked by the service, with paths)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be an object")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ExecutionCreateInput(StrictSerializer):
    workflow = serializers.CharField(max_length=64, help_text="workflow id or name")
    version = serializers.CharField(required=False, max_length=128, help_text="default: the latest published")
    inputs = JSONObjectField(required=False)
    mode = serializers.ChoiceField(choices=ExecutionMode.choices, default=ExecutionMode.RUN)
    idempotency_key = serializers.CharField(required=False, min_length=1, max_length=255)
    region = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$", required=False, help_text="where to run; default the workflow's region"
    )


class PlanInput(StrictSerializer):
    inputs = JSONObjectField(required=False)
    region = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$", required=False, help_text="where to run; default the workflow's region"
    )


class AttemptOutput(serializers.Serializer):
    attempt = serializers.IntegerField()
    worker = serializers.CharField()
    started_at = serializers.CharField()
    finished_at = serializers.CharField(required=False)
    outcome = serializers.CharField(allow_null=True)
    error = serializers.CharField(required=False)


class StepOutput(serializers.ModelSerializer):
    id = serializers.CharField(source="step_id")
    shard = serializers.IntegerField(source="shard_index")
    compensates = serializers.SerializerMethodField()
    attempts = serializers.SerializerMethodField()
    waiting_to_be_sent = serializers.BooleanField(
        source="send_pending",
        read_only=True,
        help_text="queued, but the broker did not take its message yet: MC sends it as soon as the broker is back",
    )

    class Meta:
        model = StepRun
        fields = [
            "id",
            "kind",
            "shard",
            "matrix",
            "compensates",
            "uses",
            "status",
            "queue",
            "resource_class",
            "needs",
            "attempt",
            "max_attempts",
            "attempts",
            "worker",
            "queued_at",
            "waiting_to_be_sent",
            "started_at",
            "finished_at",
            "next_attempt_at",
            "quota_held_since",
            "input_digest",
            "output_digest",
            "outputs",
            "outputs_ref",
            "error",
        ]

    @extend_schema_field(AttemptOutput(many=True))
    def get_attempts(self, step: StepRun) -> list[dict[str, Any]]:
        """Finished attempts, then the one running now (its outcome still null)."""
        attempts = list(step.attempts)
        if step.status == "running" and step.attempt_started_at is not None:
            started = step.attempt_started_at.isoformat()
            attempts.append({"attempt": step.attempt, "worker": step.worker, "started_at": started, "outcome": None})
        return attempts

    def get_compensates(self, step: StepRun) -> str | None:
        return step.step_id if step.kind == "compensation" else None


class ExecutionOutput(serializers.ModelSerializer):
    workflow = serializers.UUIDField(source="workflow_id")
    workflow_name = serializers.CharField(source="workflow.name")
    version = serializers.CharField(source="workflow_version.version")
    snapshot = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Execution
        fields = [
            "id",
            "workflow",
            "workflow_name",
            "version",
            "snapshot",
            "mode",
            "status",
            "region",
            "inputs",
            "inputs_digest",
            "idempotency_key",
            "canary_release",
            "arm",
            "steps_total",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_snapshot(self, execution: Execution) -> str:
        return f"sha256:{execution.workflow_version.digest}"


class ExecutionDetailOutput(ExecutionOutput):
    plan = serializers.JSONField()
    steps = serializers.SerializerMethodField()

    class Meta(ExecutionOutput.Meta):
        fields = [*ExecutionOutput.Meta.fields, "plan", "steps"]

    @extend_schema_field(StepOutput(many=True))
    def get_steps(self, execution: Execution) -> Any:
        steps = self.context.get("steps")
        if steps is None:
            steps = execution.steps.all()
        return StepOutput(steps, many=True).data
