"""The OpenAPI schema says what the API does: every status an operation can answer.

``McAutoSchema`` (DRF's ``DEFAULT_SCHEMA_CLASS``) adds, in one place, the error responses
that come from machinery every view shares rather than from the view itself:

| status | when                                                      | operations                  |
|--------|-----------------------------------------------------------|-----------------------------|
| 400    | a malformed body, query parameter or path (NUL character) | with a body or parameters   |
| 401    | no credentials, or a bad token                            | authenticated ones          |
| 403    | no tenant, or a role below the one the method needs       | authenticated ones          |
| 404    | no such object (or another tenant's); a page out of range | with path parameters; lists |
| 413    | a body over MC_MAX_REQUEST_BYTES                          | with a body                 |
| 415    | a body in a media type no parser reads                    | with a body                 |
| 429    | throttled (MC_THROTTLE_USER / MC_THROTTLE_ANON)           | all                         |
| 503    | the database, or the broker or cache, is down             | all                         |

each with MC's one error shape (``ErrorOutput``), and ``Retry-After`` on 429 and 503.
Statuses that belong to one operation (409, an operation's own 404) stay with its view's
``extend_schema``. Request bodies of ``StrictSerializer`` are ``additionalProperties:
false``, as the server refuses unknown keys; the YAML media types, which the server reads
as a bare manifest, are listed only where a manifest is what the body carries.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny
from rest_framework.serializers import Serializer

from mc_project.serializers import ErrorOutput, StrictSerializer

YAML_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
BODY_METHODS = ("POST", "PUT", "PATCH")

ERROR_DESCRIPTIONS = {
    "400": "The request is malformed or not valid (details name each problem by path).",
    "401": "No credentials, or a token that is invalid, expired or revoked.",
    "403": "The caller belongs to no tenant, or lacks the role this method needs.",
    "404": "No such object (or it belongs to another tenant).",
    "409": "The request conflicts with the object's state.",
    "413": "The request body is larger than MC_MAX_REQUEST_BYTES.",
    "415": "The request body's media type is not one the API reads.",
    "429": "Too many requests; wait for Retry-After seconds.",
    "503": "A dependency (the database, or the broker or cache) is down; retry after Retry-After seconds.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
MANIFEST_DOCUMENT = {
    "type": "object",
    "additionalProperties": {},
    "description": "A workflow manifest (schema manifest.v1, see /api/schemas/manifest.v1.json).",
}


class McAutoSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` with MC's shared error responses and strict request bodies."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        self._restrict_yaml_bodies(operation)
        responses = operation.setdefault("responses", {})
        error = {"application/json": {"schema": self._error_schema()}}
        for status in self._error_statuses(operation):
            response = responses.setdefault(status, {"description": ERROR_DESCRIPTIONS[status], "content": error})
            if not response.get("description"):
                response["description"] = ERROR_DESCRIPTIONS.get(status, "")
            if status in ("429", "503"):
                response.setdefault("headers", {}).update(RETRY_AFTER)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_schema(self) -> dict[str, Any]:
        component = self.resolve_serializer(ErrorOutput, "response")
        return dict(component.ref)

    def _error_statuses(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        has_path = any(p.get("in") == "path" for p in parameters)
        has_query = any(p.get("in") == "query" for p in parameters)
        has_body = self.method in BODY_METHODS
        statuses = {"429", "503"}
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            statuses |= {"401", "403"}
        if has_body or has_query or has_path:
            statuses.add("400")
        if has_path or self._is_list_view():
            statuses.add("404")
        if has_body:
            statuses |= {"413", "415"}
        return sorted(statuses)

    def _restrict_yaml_bodies(self, operation: dict[str, Any]) -> None:
        """YAML bodies are read as a bare manifest: list them only where the body is a manifest."""
        content = operation.get("requestBody", {}).get("content", {})
        if not any(media_type in content for media_type in YAML_MEDIA_TYPES):
            return
        serializer = self.get_request_serializer()
        if isinstance(serializer, type) and issubclass(serializer, Serializer):
            serializer = serializer()
        takes_manifest = isinstance(serializer, Serializer) and "manifest" in serializer.fields
        for media_type in YAML_MEDIA_TYPES:
            if media_type in content:
                if takes_manifest:
                    content[media_type] = {"schema": dict(MANIFEST_DOCUMENT)}
                else:
                    del content[media_type]

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False  # the server refuses unknown keys (400)
        if type(serializer).__doc__ is None:
            schema.pop("description", None)  # not a base class's docstring (StrictSerializer's)
        return schema
