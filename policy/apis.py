"""HTTP endpoints of policy: the tenant's decisions; bundle revisions for platform operators."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mc_project.errors import Forbidden
from mc_project.serializers import ErrorOutput
from mc_project.tenancy.choices import Role
from policy import selectors, services
from policy.choices import DecisionResult, DecisionStage
from policy.models import PolicyBundle, PolicyDecision
from policy.serializers import BundleOutput, BundleUploadInput, DecisionOutput


class DecisionFilter(django_filters.FilterSet):
    pack = django_filters.CharFilter()
    result = django_filters.ChoiceFilter(choices=DecisionResult.choices)
    stage = django_filters.ChoiceFilter(choices=DecisionStage.choices)
    execution = django_filters.UUIDFilter(field_name="execution_id")

    class Meta:
        model = PolicyDecision
        fields = ["pack", "result", "stage", "execution"]


class DecisionListApi(ListAPIView):
    """Every decision made for the tenant, newest first (``?pack=``, ``?result=``, ``?stage=``, ``?execution=``)."""

    serializer_class = DecisionOutput
    queryset = PolicyDecision.objects.none()
    filterset_class = DecisionFilter

    def get_queryset(self) -> Any:
        return selectors.decision_list(user=self.request.user)

    @extend_schema(operation_id="policy_decisions_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DecisionDetailApi(APIView):
    @extend_schema(responses=DecisionOutput)
    def get(self, request: Request, decision_id: str) -> Response:
        return Response(DecisionOutput(selectors.decision_get(user=request.user, decision_id=decision_id)).data)


class BundleListApi(ListAPIView):
    """Bundle revisions of every pack. POST (platform staff only) checks and activates a new revision."""

    required_roles = {"POST": Role.OPERATOR}
    serializer_class = BundleOutput
    queryset = PolicyBundle.objects.all()

    @extend_schema(operation_id="policy_bundles_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=BundleUploadInput, responses={201: BundleOutput, 200: BundleOutput, 400: ErrorOutput})
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            # Bundles decide for every tenant: only the platform's own operators may change them.
            raise Forbidden("Only platform staff may upload policy bundles.")
        data = BundleUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        files = {path: content.encode() for path, content in data.validated_data["files"].items()}
        row, created = services.bundle_activate(pack=data.validated_data["pack"], files=files, actor=request.user)
        return Response(BundleOutput(row).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
