"""HTTP endpoint of disclosure bundles: ``GET /api/executions/{id}/disclosure.tgz``."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from executions.selectors import execution_get
from mc_project.renderers import GzipRenderer
from mc_project.serializers import ErrorOutput
from receipts.disclosure import disclosure_filename, disclosure_get


class ExecutionDisclosureApi(APIView):
    """The run's disclosure bundle: signed receipt, key, snapshot, policy proof, SBOM, logs, README.

    409 (``receipt_not_signed``, ``execution_not_finished``, ``no_receipt``) until the run has a
    signed receipt. The same run always gives the same bytes.
    """

    renderer_classes = [JSONRenderer, GzipRenderer]  # errors as JSON; application/gzip accepted

    @extend_schema(
        operation_id="executions_disclosure",
        responses={(200, "application/gzip"): OpenApiTypes.BINARY, 404: ErrorOutput, 409: ErrorOutput},
    )
    def get(self, request: Request, execution_id: str) -> HttpResponse:
        execution = execution_get(user=request.user, execution_id=execution_id)
        data = disclosure_get(execution=execution)
        response = HttpResponse(data, content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{disclosure_filename(execution)}"'
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        return response
