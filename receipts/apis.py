"""HTTP endpoints of receipts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from receipts import selectors
from receipts.filters import ReceiptFilter
from receipts.models import Receipt
from receipts.serializers import ChainVerdictOutput, ReceiptOutput, VerdictOutput
from receipts.verification import chain_verify, receipt_verify


class ReceiptListApi(ListAPIView):
    """The tenant's receipts, newest first; filter by kind (repeatable), execution, workflow, signed."""

    serializer_class = ReceiptOutput
    queryset = Receipt.objects.none()  # for the schema; get_queryset scopes to the tenant
    filterset_class = ReceiptFilter

    def get_queryset(self) -> Any:
        return selectors.receipt_list(user=self.request.user)

    @extend_schema(operation_id="receipts_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ReceiptDetailApi(APIView):
    @extend_schema(responses=ReceiptOutput)
    def get(self, request: Request, receipt_id: str) -> Response:
        return Response(ReceiptOutput(selectors.receipt_get(user=request.user, receipt_id=receipt_id)).data)


class ReceiptVerifyApi(APIView):
    """Signature and key, the link to the previous receipt, and that the database still holds what was signed."""

    @extend_schema(responses=VerdictOutput, operation_id="receipts_verify")
    def get(self, request: Request, receipt_id: str) -> Response:
        receipt = selectors.receipt_get(user=request.user, receipt_id=receipt_id)
        return Response(receipt_verify(receipt).as_dict())


class ChainVerifyApi(APIView):
    """Walk the tenant's chain of receipts: gaps, broken links, bad signatures, edited rows."""

    @extend_schema(responses=ChainVerdictOutput, operation_id="receipts_chain_verify")
    def get(self, request: Request) -> Response:
        from mc_project.tenancy.selectors import tenant_for_user

        return Response(chain_verify(tenant_for_user(request.user)).as_dict())
