"""HTTP endpoints of receipts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from receipts import selectors
from receipts.models import Receipt
from receipts.serializers import ReceiptOutput


class ReceiptListApi(ListAPIView):
    serializer_class = ReceiptOutput
    queryset = Receipt.objects.none()  # for the schema; get_queryset scopes to the tenant

    def get_queryset(self) -> Any:
        return selectors.receipt_list(user=self.request.user)

    @extend_schema(operation_id="receipts_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ReceiptDetailApi(APIView):
    @extend_schema(responses=ReceiptOutput)
    def get(self, request: Request, receipt_id: str) -> Response:
        return Response(ReceiptOutput(selectors.receipt_get(user=request.user, receipt_id=receipt_id)).data)
