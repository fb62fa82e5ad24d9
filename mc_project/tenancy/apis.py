"""Who am I: the caller's user, tenant and role (used by ``maestro login``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mc_project.tenancy.selectors import membership_for_user


class MeApi(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        membership = membership_for_user(request.user)
        assert membership is not None  # IsTenantMember let us in
        tenant = membership.tenant
        return Response(
            {
                "username": request.user.get_username(),
                "tenant": {"id": str(tenant.id), "slug": tenant.slug, "name": tenant.name},
                "role": membership.role,
            }
        )
