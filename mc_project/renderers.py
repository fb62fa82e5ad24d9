"""Renderers for endpoints that answer something other than JSON (logs, bundles).

Their views return a ready ``HttpResponse``; these renderers exist so that content
negotiation accepts ``Accept: text/plain`` (or ``application/gzip``) for them, and so that
an error on such an endpoint is still MC's JSON error shape, labelled as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer


class _ErrorsAsJson(BaseRenderer):
    """Renders text as is and anything else (an error body) as JSON with a JSON content type."""

    charset: str | None = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode("utf-8")
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode("utf-8")


class PlainTextRenderer(_ErrorsAsJson):
    media_type = "text/plain"
    format = "txt"


class GzipRenderer(_ErrorsAsJson):
    media_type = "application/gzip"
    format = "tgz"
    charset = None


class PemRenderer(_ErrorsAsJson):
    media_type = "application/x-pem-file"
    format = "pem"
