"""HTTP endpoints of receipts."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mc_project.errors import Conflict
from mc_project.renderers import PemRenderer, PlainTextRenderer
from mc_project.serializers import ErrorOutput
from receipts import selectors
from receipts.disclosure import receipt_public_keys_pem
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


class ReceiptKeyApi(APIView):
    """PEM of MC's public keys that signed the receipt: what ``maestro receipt get`` saves beside it."""

    renderer_classes = [JSONRenderer, PemRenderer, PlainTextRenderer]  # errors as JSON

    @extend_schema(
        operation_id="receipts_key",
        responses={(200, "application/x-pem-file"): OpenApiTypes.STR, 404: ErrorOutput, 409: ErrorOutput},
    )
    def get(self, request: Request, receipt_id: str) -> HttpResponse:
        receipt = selectors.receipt_get(user=request.user, receipt_id=receipt_id)
        if not receipt.envelope:
            raise Conflict("The receipt is not signed yet.", code="receipt_not_signed")
        pem = receipt_public_keys_pem(receipt)
        if not pem:
            raise Conflict("The receipt was signed keyless: its key is in the Sigstore bundle.", code="keyless")
        return HttpResponse(pem, content_type="application/x-pem-file")


class ChainVerifyApi(APIView):
    """Walk the tenant's chain of receipts: gaps, broken links, bad signatures, edited rows."""

    @extend_schema(responses=ChainVerdictOutput, operation_id="receipts_chain_verify")
    def get(self, request: Request) -> Response:
        from mc_project.tenancy.selectors import tenant_for_user

        return Response(chain_verify(tenant_for_user(request.user)).as_dict())
