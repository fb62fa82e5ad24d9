"""HTTP endpoints of workflows: thin views over services and selectors."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions.packages.registry import package_problems
from executions.services import manifest_plan
from mc_project.errors import Conflict
from mc_project.serializers import ErrorOutput
from mc_project.tenancy.choices import Role
from mc_project.tenancy.selectors import tenant_for_user
from workflows import selectors, services
from workflows.filters import VersionFilter, WorkflowFilter
from workflows.manifest import canonical_json, sha256_digest, validate_manifest
from workflows.models import Workflow, WorkflowVersion
from workflows.serializers import (
    DraftInput,
    ManifestPlanInput,
    PublishInput,
    PublishOutput,
    VersionDetailOutput,
    VersionOutput,
    WorkflowCreateInput,
    WorkflowOutput,
    WorkflowUpdateInput,
)


@cache
def schema_bytes() -> bytes:
    """The schema file exactly as it lives in the repository."""
    return resources.files("workflows.manifest").joinpath("schema/manifest.v1.json").read_bytes()


def _workflow_body(request: Request, workflow_id: Any) -> dict[str, Any]:
    return WorkflowOutput(selectors.workflow_get(user=request.user, workflow_id=workflow_id)).data


class WorkflowListApi(ListAPIView):
    """List the tenant's workflows (filter by ``name``, ``search``, ``state``), or create one."""

    required_roles = {"POST": Role.AUTHOR}
    serializer_class = WorkflowOutput
    queryset = Workflow.objects.none()  # for the schema; get_queryset scopes to the tenant
    filterset_class = WorkflowFilter

    def get_queryset(self) -> Any:
        return selectors.workflow_list(user=self.request.user)

    @extend_schema(operation_id="workflows_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="workflows_create",
        request=WorkflowCreateInput,
        responses={201: WorkflowOutput, 400: ErrorOutput, 409: ErrorOutput},
    )
    def post(self, request: Request) -> Response:
        data = WorkflowCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        workflow = services.workflow_create(
            tenant=tenant_for_user(request.user), actor=request.user, **data.validated_data
        )
        location = reverse("workflow-detail", args=[workflow.pk])
        return Response(
            _workflow_body(request, workflow.pk), status=status.HTTP_201_CREATED, headers={"Location": location}
        )


class WorkflowDetailApi(APIView):
    required_roles = {"PATCH": Role.AUTHOR}

    @extend_schema(responses=WorkflowOutput)
    def get(self, request: Request, workflow_id: str) -> Response:
        return Response(_workflow_body(request, workflow_id))

    @extend_schema(request=WorkflowUpdateInput, responses=WorkflowOutput)
    def patch(self, request: Request, workflow_id: str) -> Response:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        data = WorkflowUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.workflow_update(workflow=workflow, **data.validated_data)
        return Response(_workflow_body(request, workflow_id))


class DraftApi(APIView):
    """The workflow's one draft: read it, replace it (validated on every save), discard it."""

    required_roles = {"PUT": Role.AUTHOR, "DELETE": Role.AUTHOR}

    @extend_schema(responses=VersionDetailOutput)
    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        return Response(VersionDetailOutput(selectors.draft_get(workflow=workflow)).data)

    @extend_schema(request=DraftInput, responses=VersionDetailOutput)
    def put(self, request: Request, workflow_id: str) -> Response:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        data = DraftInput(data=request.data)
        data.is_valid(raise_exception=True)
        draft = services.draft_save(workflow=workflow, actor=request.user, **data.validated_data)
        return Response(VersionDetailOutput(draft).data)

    @extend_schema(responses={204: None, 409: ErrorOutput})
    def delete(self, request: Request, workflow_id: str) -> Response:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        services.draft_discard(workflow=workflow)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublishApi(APIView):
    """Publish the draft as the next version: ``{"bump": "major|minor|patch"}`` or ``{"version": "x.y.z"}``."""

    required_roles = {"POST": Role.PUBLISHER}

    @extend_schema(request=PublishInput, responses={201: PublishOutput, 409: ErrorOutput})
    def post(self, request: Request, workflow_id: str) -> Response:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        data = PublishInput(data=request.data or {})
        data.is_valid(raise_exception=True)
        result = services.workflow_publish(workflow=workflow, actor=request.user, **data.validated_data)
        body = PublishOutput({"version": result.version, "receipt_id": result.receipt.pk}).data
        location = reverse("workflow-version-detail", args=[workflow.pk, result.version.version])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class VersionListApi(ListAPIView):
    """The workflow's versions, newest first (``?state=draft|published``)."""

    serializer_class = VersionOutput
    queryset = WorkflowVersion.objects.none()
    filterset_class = VersionFilter

    def get_queryset(self) -> Any:
        workflow = selectors.workflow_get(user=self.request.user, workflow_id=self.kwargs["workflow_id"])
        return selectors.version_list(workflow=workflow)

    @extend_schema(operation_id="workflows_versions_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class VersionDetailApi(APIView):
    """A published version. It never changes: writes answer 409."""

    required_roles = {"PUT": Role.AUTHOR, "PATCH": Role.AUTHOR, "DELETE": Role.AUTHOR}

    def _version(self, request: Request, workflow_id: str, version: str) -> Any:
        workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
        return selectors.version_get(workflow=workflow, version=version)

    @extend_schema(responses=VersionDetailOutput)
    def get(self, request: Request, workflow_id: str, version: str) -> Response:
        return Response(VersionDetailOutput(self._version(request, workflow_id, version)).data)

    @extend_schema(
        request=None, responses={409: ErrorOutput}, description="Always 409: published versions are immutable."
    )
    def _refuse(self, request: Request, workflow_id: str, version: str) -> Response:
        found = self._version(request, workflow_id, version)
        raise Conflict(
            f"Version {found.version} is published and immutable; edit the draft and publish a new version.",
            code="version_immutable",
        )

    put = patch = delete = _refuse


class SnapshotApi(APIView):
    """The exact canonical bytes of a published manifest, addressed by their sha256."""

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, digest: str) -> HttpResponse:
        data = selectors.snapshot_get(user=request.user, digest=digest)
        response = HttpResponse(data, content_type="application/json")
        response["ETag"] = f'"sha256:{digest}"'
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        return response


class ManifestSchemaApi(APIView):
    """The manifest v1 JSON Schema (draft 2020-12); public, so editors can fetch it."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(responses={(200, "application/schema+json"): OpenApiTypes.OBJECT})
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(schema_bytes(), content_type="application/schema+json")


class ManifestValidateApi(APIView):
    """Validate a manifest without saving it: every problem, and its digest if valid."""

    required_roles = {"POST": Role.VIEWER}

    @extend_schema(request=DraftInput, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = DraftInput(data=request.data)
        data.is_valid(raise_exception=True)
        doc = data.validated_data["manifest"]
        problems = validate_manifest(doc, extra_checks=[package_problems])
        digest = None if problems else f"sha256:{sha256_digest(canonical_json(doc))}"
        return Response({"valid": not problems, "problems": [p.as_dict() for p in problems], "digest": digest})


class ManifestPlanApi(APIView):
    """Plan a manifest that need not be published: the published-version plan, with policy.

    Checks the manifest as a draft save does and the inputs as a run does, then answers
    the plan with every policy pack's decision at stage ``plan`` (a deny is shown, not an
    error). Saves nothing, not even the decisions.
    """

    required_roles = {"POST": Role.VIEWER}

    @extend_schema(
        request=ManifestPlanInput,
        responses={200: OpenApiTypes.OBJECT, 400: ErrorOutput, 413: ErrorOutput},
        description="The plan of an unpublished manifest: stages, critical path, cost, quota and "
        "policy_decisions (each with a null id: nothing is stored), plus workflow_name, version and "
        "the resolved inputs. An invalid manifest is 400 manifest_invalid, bad inputs 400 invalid_inputs.",
    )
    def post(self, request: Request) -> Response:
        data = ManifestPlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        body = manifest_plan(
            tenant=tenant_for_user(request.user),
            actor=request.user,
            manifest=values["manifest"],
            inputs=values.get("inputs"),
            region=values.get("region", ""),
        )
        return Response(body)
