"""HTTP endpoints of receipts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from receipts import selectors
from receipts.serializers import ReceiptOutput


class ReceiptListApi(GenericAPIView):
    serializer_class = ReceiptOutput

    def get_queryset(self) -> Any:
        return selectors.receipt_list(user=self.request.user)

    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ReceiptOutput(page, many=True).data)


class ReceiptDetailApi(APIView):
    @extend_schema(responses=ReceiptOutput)
    def get(self, request: Request, receipt_id: str) -> Response:
        return Response(ReceiptOutput(selectors.receipt_get(user=request.user, receipt_id=receipt_id)).data)
