"""HTTP endpoints of canary releases: list, start, inspect, pause, resume, promote, roll back; the webhook."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from canary import selectors, services
from canary.choices import WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, CanaryState
from canary.filters import CanaryFilter
from canary.models import CanaryEvent, CanaryRelease
from canary.serializers import CanaryActionInput, CanaryCreateInput, CanaryEventOutput, CanaryOutput, WebhookInput
from canary.webhook import webhook_verify
from mc_project.errors import ApplicationError, Conflict, NotFound, ValidationFailed
from mc_project.serializers import ErrorOutput
from mc_project.tenancy.choices import Role
from workflows import selectors as workflow_selectors
from workflows.models import Workflow, WorkflowVersion
from workflows.services import latest_published


def _workflow(request: Request, ref: str) -> Workflow:
    """A workflow of the caller's tenant by id or by name."""
    try:
        return workflow_selectors.workflow_get(user=request.user, workflow_id=uuid.UUID(ref))
    except ValueError:
        found = workflow_selectors.workflow_list(user=request.user).filter(name=ref).first()
        if found is None:
            raise NotFound(
                f"No workflow named {ref!r}.", details=[{"path": "/workflow", "message": "no such workflow"}]
            ) from None
        return found


def _version(workflow: Workflow, number: str, path: str) -> WorkflowVersion:
    try:
        return workflow_selectors.version_get(workflow=workflow, version=number)
    except NotFound as exc:
        raise ValidationFailed(exc.message, details=[{"path": path, "message": "no such published version"}]) from None


def _versions(workflow: Workflow, values: dict[str, Any]) -> tuple[WorkflowVersion, WorkflowVersion]:
    """The stable and canary versions asked for; by default the latest and the one before it."""
    if "canary_version" in values:
        canary = _version(workflow, values["canary_version"], "/canary_version")
    else:
        latest = latest_published(workflow)
        if latest is None:
            raise ValidationFailed(
                f"Workflow {workflow.name!r} has no published version.",
                details=[{"path": "/canary_version", "message": "nothing published to release"}],
            )
        canary = latest
    if "stable_version" in values:
        return _version(workflow, values["stable_version"], "/stable_version"), canary
    before = (
        workflow.versions.filter(state=canary.state, published_at__lt=canary.published_at)
        .order_by("-published_at", "-id")
        .first()
    )
    if before is None:
        raise ValidationFailed(
            f"Version {canary.version} has no published version before it to keep as stable.",
            details=[{"path": "/stable_version", "message": "required: no earlier published version"}],
        )
    return before, canary


def _output(request: Request, release: CanaryRelease) -> dict[str, Any]:
    return CanaryOutput(selectors.canary_get(user=request.user, release_id=release.pk)).data


class CanaryListApi(ListAPIView):
    """The tenant's canary releases, newest first; filter by workflow, state and strategy. POST starts one."""

    required_roles = {"POST": Role.PUBLISHER}
    serializer_class = CanaryOutput
    queryset = CanaryRelease.objects.none()
    filterset_class = CanaryFilter

    def get_queryset(self) -> Any:
        return selectors.canary_list(user=self.request.user)

    @extend_schema(operation_id="canaries_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="canaries_create",
        request=CanaryCreateInput,
        responses={201: CanaryOutput, 400: ErrorOutput, 404: ErrorOutput, 409: ErrorOutput},
        description="Start routing executions that pin no version between a stable and a canary version.",
    )
    def post(self, request: Request) -> Response:
        data = CanaryCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        workflow = _workflow(request, values.pop("workflow"))
        stable, canary = _versions(workflow, values)
        values.pop("stable_version", None)
        values.pop("canary_version", None)
        release = services.canary_create(
            workflow=workflow, stable_version=stable, canary_version=canary, actor=request.user, **values
        )
        headers = {"Location": reverse("canary-detail", args=[release.pk])}
        return Response(_output(request, release), status=status.HTTP_201_CREATED, headers=headers)


class CanaryDetailApi(APIView):
    @extend_schema(responses={200: CanaryOutput, 404: ErrorOutput})
    def get(self, request: Request, release_id: int) -> Response:
        return Response(CanaryOutput(selectors.canary_get(user=request.user, release_id=release_id)).data)


class _CanaryActionApi(APIView):
    required_roles = {"POST": Role.PUBLISHER}
    service: Any = None

    def post(self, request: Request, release_id: int) -> Response:
        release = selectors.canary_get(user=request.user, release_id=release_id)
        data = CanaryActionInput(data=request.data)
        data.is_valid(raise_exception=True)
        type(self).service(release=release, actor=request.user, reason=data.validated_data["reason"])
        return Response(_output(request, release))


_ACTION_SCHEMA = extend_schema(
    request=CanaryActionInput, responses={200: CanaryOutput, 403: ErrorOutput, 404: ErrorOutput, 409: ErrorOutput}
)


class CanaryPauseApi(_CanaryActionApi):
    """Send all traffic to the stable version until resumed."""

    service = staticmethod(services.canary_pause)

    @_ACTION_SCHEMA
    def post(self, request: Request, release_id: int) -> Response:
        return super().post(request, release_id)


class CanaryResumeApi(_CanaryActionApi):
    """Route by weight again (blue/green: all to the canary)."""

    service = staticmethod(services.canary_resume)

    @_ACTION_SCHEMA
    def post(self, request: Request, release_id: int) -> Response:
        return super().post(request, release_id)


class CanaryPromoteApi(_CanaryActionApi):
    """Make the canary the stable version; routing ends."""

    service = staticmethod(services.canary_promote)

    @_ACTION_SCHEMA
    def post(self, request: Request, release_id: int) -> Response:
        return super().post(request, release_id)


class CanaryRollbackApi(_CanaryActionApi):
    """Weight to 0: every execution that pins no version runs the stable version again."""

    service = staticmethod(services.canary_rollback)

    @_ACTION_SCHEMA
    def post(self, request: Request, release_id: int) -> Response:
        return super().post(request, release_id)


class CanaryAnalyseApi(APIView):
    """Analyse the release now and act on the verdict, as a canary run or the beat would."""

    required_roles = {"POST": Role.PUBLISHER}

    @extend_schema(request=None, responses={200: CanaryOutput, 403: ErrorOutput, 404: ErrorOutput, 409: ErrorOutput})
    def post(self, request: Request, release_id: int) -> Response:
        release = selectors.canary_get(user=request.user, release_id=release_id)
        if release.state != CanaryState.RUNNING:
            raise Conflict(
                f"Only a running release is analysed; this one is {release.state}.",
                code="canary_not_running",
                details=[{"path": "/state", "message": f"is {release.state}"}],
            )
        services.canary_analyse(release_id=release.pk)
        return Response(_output(request, release))


class CanaryEventListApi(ListAPIView):
    """What happened to the release, oldest first: started, paused, resumed, stepped, promoted, rolled back."""

    serializer_class = CanaryEventOutput
    queryset = CanaryEvent.objects.none()

    def get_queryset(self) -> Any:
        return selectors.canary_events(user=self.request.user, release_id=self.kwargs["release_id"])

    @extend_schema(operation_id="canaries_events_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CanaryWebhookApi(APIView):
    """A breach reported by an alerting system rolls back the workflow's release (docs/canary.md).

    Authenticated by an HMAC-SHA256 signature of ``<timestamp>.<body>`` with
    MC_CANARY_WEBHOOK_SECRET; a bad signature, a stale timestamp or a replay is a 401.
    """

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        request=WebhookInput,
        parameters=[
            OpenApiParameter(WEBHOOK_TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(WEBHOOK_SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: ErrorOutput, 401: ErrorOutput, 404: ErrorOutput, 503: ErrorOutput},
    )
    def post(self, request: Request) -> Response:
        secret = settings.MC_CANARY_WEBHOOK_SECRET
        if not secret:
            raise ApplicationError(
                "The canary webhook is disabled: MC_CANARY_WEBHOOK_SECRET is not set.",
                code="webhook_disabled",
                status=503,
            )
        body = request.body  # the exact bytes that were signed, before any parsing
        sent, signature = webhook_verify(
            secret=secret,
            timestamp=request.headers.get(WEBHOOK_TIMESTAMP_HEADER),
            signature=request.headers.get(WEBHOOK_SIGNATURE_HEADER),
            body=body,
        )
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed(
                "The body is not JSON.", details=[{"path": "", "message": "not a JSON document"}]
            ) from None
        data = WebhookInput(data=document)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        release = services.webhook_breach(
            signature=signature,
            timestamp=sent,
            breach=values["breach"],
            tenant_slug=values["tenant"],
            workflow_ref=values["workflow"],
            reason=_reason(values),
            figures=values.get("metrics"),
        )
        return Response(
            {"breach": values["breach"], "rolled_back": CanaryOutput(release).data if release is not None else None}
        )


def _reason(values: dict[str, Any]) -> str:
    """What the release keeps as the reason: who reported what."""
    reason = "webhook breach" if values["breach"] else "webhook"
    if values.get("sender"):
        reason += f" from {values['sender']}"
    if values.get("reason"):
        reason += f": {values['reason']}"
    if values.get("metrics"):
        reason += " " + json.dumps(values["metrics"], sort_keys=True, separators=(",", ":"))
    return reason
