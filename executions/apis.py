"""HTTP endpoints of executions: plan, start, inspect, follow and cancel runs."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import selectors, services
from executions.choices import ExecutionMode, StepKind
from executions.filters import ExecutionFilter
from executions.inputs import inputs_resolve
from executions.models import Execution, StepRun
from executions.serializers import (
    ExecutionCreateInput,
    ExecutionDetailOutput,
    ExecutionOutput,
    PlanInput,
    StepOutput,
)
from mc_project.errors import NotFound, ValidationFailed
from mc_project.renderers import PlainTextRenderer
from mc_project.serializers import ErrorOutput
from mc_project.tenancy.choices import Role
from mc_project.tenancy.selectors import tenant_for_user
from policy.choices import DecisionStage
from workflows import selectors as workflow_selectors
from workflows.models import Workflow

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _workflow(request: Request, ref: str) -> Workflow:
    """A workflow of the caller's tenant by id or by name."""
    try:
        return workflow_selectors.workflow_get(user=request.user, workflow_id=uuid.UUID(ref))
    except ValueError:
        found = workflow_selectors.workflow_list(user=request.user).filter(name=ref).first()
        if found is None:
            raise NotFound(f"No workflow named {ref!r}.") from None
        return found


def _idempotency_key(request: Request, body_key: str | None) -> str | None:
    header = request.headers.get(IDEMPOTENCY_HEADER)
    if header is not None:
        header = header.strip()
        if not header or len(header) > 255 or not header.isprintable():
            raise ValidationFailed(
                "Idempotency-Key must be 1 to 255 printable characters.",
                details=[{"path": "/headers/Idempotency-Key", "message": "must be 1 to 255 printable characters"}],
            )
    if header and body_key and header != body_key:
        raise ValidationFailed(
            "The Idempotency-Key header and the idempotency_key field differ.",
            details=[{"path": "/idempotency_key", "message": "differs from the Idempotency-Key header"}],
        )
    return body_key or header or None


def _detail(execution: Execution) -> dict[str, Any]:
    steps = selectors.step_list(execution=execution).exclude(kind=StepKind.SHARD)
    return ExecutionDetailOutput(execution, context={"steps": steps}).data


class ExecutionListApi(ListAPIView):
    """The tenant's executions, newest first; filter by workflow, status, mode and time. POST starts one."""

    required_roles = {"POST": Role.AUTHOR}
    serializer_class = ExecutionOutput
    queryset = Execution.objects.none()
    filterset_class = ExecutionFilter

    def get_queryset(self) -> Any:
        return selectors.execution_list(user=self.request.user)

    @extend_schema(operation_id="executions_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="executions_create",
        request=ExecutionCreateInput,
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False)],
        responses={
            201: ExecutionDetailOutput,
            200: ExecutionDetailOutput,
            400: ErrorOutput,
            404: ErrorOutput,
            409: ErrorOutput,
        },
        description="Start an execution (or a dry run with mode=dry_run). Repeating a request with the same "
        "idempotency key returns the first execution (200); a different request with a used key is 409.",
    )
    def post(self, request: Request) -> Response:
        data = ExecutionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        execution, created = services.execution_create(
            tenant=tenant_for_user(request.user),
            actor=request.user,
            workflow=_workflow(request, values["workflow"]),
            version=values.get("version"),
            inputs=values.get("inputs"),
            mode=values["mode"],
            idempotency_key=_idempotency_key(request, values.get("idempotency_key")),
            region=values.get("region", ""),
        )
        execution = selectors.execution_get(user=request.user, execution_id=execution.pk)
        headers = {"Location": reverse("execution-detail", args=[execution.pk])}
        return Response(
            _detail(execution), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK, headers=headers
        )


class ExecutionDetailApi(APIView):
    @extend_schema(responses=ExecutionDetailOutput)
    def get(self, request: Request, execution_id: str) -> Response:
        return Response(_detail(selectors.execution_get(user=request.user, execution_id=execution_id)))


class ExecutionCancelApi(APIView):
    """Stop an execution: pending steps are cancelled, running ones terminated, completed ones compensated."""

    required_roles = {"POST": Role.AUTHOR}

    @extend_schema(request=None, responses={200: ExecutionDetailOutput, 409: ErrorOutput})
    def post(self, request: Request, execution_id: str) -> Response:
        execution = selectors.execution_get(user=request.user, execution_id=execution_id)
        services.execution_cancel(execution=execution)
        return Response(_detail(selectors.execution_get(user=request.user, execution_id=execution_id)))


class ExecutionProgressApi(APIView):
    """Small and cheap: step counts by status, running steps, elapsed seconds. For polling."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, execution_id: str) -> Response:
        execution = selectors.execution_get(user=request.user, execution_id=execution_id)
        return Response(selectors.execution_progress(execution=execution))


class StepListApi(ListAPIView):
    """Every step run of an execution (``?kind=step|shard|compensation``), in manifest order."""

    serializer_class = StepOutput
    queryset = StepRun.objects.none()

    def get_queryset(self) -> Any:
        execution = selectors.execution_get(user=self.request.user, execution_id=self.kwargs["execution_id"])
        kind = self.request.query_params.get("kind")
        if kind is not None and kind not in StepKind.values:
            raise ValidationFailed(
                f"kind must be one of {', '.join(StepKind.values)}.",
                details=[{"path": "/query/kind", "message": f"unknown kind {kind!r}"}],
            )
        return selectors.step_list(execution=execution, kind=kind)

    @extend_schema(
        operation_id="executions_steps_list",
        parameters=[OpenApiParameter("kind", str, enum=StepKind.values, required=False)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


_SHARD_MAX = 2**31 - 1


def _step(request: Request, execution_id: str, step_id: str) -> StepRun:
    execution = selectors.execution_get(user=request.user, execution_id=execution_id)
    kind = request.query_params.get("kind", StepKind.STEP)
    shard = request.query_params.get("shard", "0")
    # ASCII digits only ("²".isdigit() is true), and within PostgreSQL's integer.
    if kind not in StepKind.values or not (shard.isascii() and shard.isdigit() and int(shard) <= _SHARD_MAX):
        raise ValidationFailed(
            "kind must be step, shard or compensation and shard a number.",
            details=[{"path": "/query", "message": "bad kind or shard"}],
        )
    return selectors.step_get(execution=execution, step_id=step_id, kind=kind, shard=int(shard))


_STEP_PARAMETERS = [
    OpenApiParameter("kind", str, enum=StepKind.values, required=False),
    OpenApiParameter("shard", {"type": "integer", "minimum": 0, "maximum": _SHARD_MAX}, required=False),
]


class StepDetailApi(APIView):
    @extend_schema(parameters=_STEP_PARAMETERS, responses=StepOutput)
    def get(self, request: Request, execution_id: str, step_id: str) -> Response:
        return Response(StepOutput(_step(request, execution_id, step_id)).data)


class StepLogApi(APIView):
    """The step's log, every attempt, as plain text (capped at MC_STEP_LOG_LIMIT)."""

    renderer_classes = [JSONRenderer, PlainTextRenderer]  # errors as JSON; text/plain accepted

    @extend_schema(parameters=_STEP_PARAMETERS, responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, execution_id: str, step_id: str) -> HttpResponse:
        step = _step(request, execution_id, step_id)
        return HttpResponse(step.log, content_type="text/plain; charset=utf-8")


class ExecutionLogApi(APIView):
    """Logs of every step, in manifest order, each line prefixed by its step."""

    renderer_classes = [JSONRenderer, PlainTextRenderer]  # errors as JSON; text/plain accepted

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, execution_id: str) -> HttpResponse:
        execution = selectors.execution_get(user=request.user, execution_id=execution_id)
        lines: list[str] = []
        for step in selectors.step_list(execution=execution).exclude(log=""):
            label = step.step_id if step.kind == StepKind.STEP else f"{step.step_id}[{step.kind} {step.shard_index}]"
            lines.extend(f"{label} | {line}" for line in step.log.splitlines())
        return HttpResponse("\n".join(lines) + ("\n" if lines else ""), content_type="text/plain; charset=utf-8")


class PlanApi(APIView):
    """The dry-run plan of a published version: stages, critical path, queues, cost, quota, policy.

    Runs no step, sends no request, writes nothing.
    """

    required_roles = {"POST": Role.VIEWER}

    @extend_schema(request=PlanInput, responses={200: OpenApiTypes.OBJECT, 400: ErrorOutput})
    def post(self, request: Request, workflow_id: str, version: str) -> Response:
        workflow = workflow_selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        workflow_version = workflow_selectors.version_get(workflow=workflow, version=version)
        data = PlanInput(data=request.data or {})
        data.is_valid(raise_exception=True)
        resolved, problems = inputs_resolve(workflow_version.manifest, data.validated_data.get("inputs"))
        if problems:
            raise ValidationFailed(
                "The inputs do not match the workflow's declared inputs.",
                code="invalid_inputs",
                details=[problem.as_dict() for problem in problems],
            )
        plan, _ = services.plan_checked(
            version=workflow_version,
            tenant=tenant_for_user(request.user),
            actor=request.user,
            stage=DecisionStage.PLAN,
            mode=ExecutionMode.DRY_RUN,
            region=data.validated_data.get("region", ""),
        )
        body = {
            "workflow": str(workflow.pk),
            "workflow_name": workflow.name,
            "version": workflow_version.version,
            "snapshot": f"sha256:{workflow_version.digest}",
            "inputs": resolved,
            **plan,
        }
        return Response(body)
