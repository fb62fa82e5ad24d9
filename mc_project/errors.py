"""One error family, rendered in one JSON shape for every endpoint and status.

    {"error": {"code": "...", "message": "...", "details": [{"path": "...", "message": "..."}]}}

Services raise ``ApplicationError`` subclasses; DRF's own exceptions and the manifest
package's ``ManifestError`` are translated here, so views never build error bodies.

A dependency that is down (PostgreSQL, or Redis as broker or cache) is no bug of MC's:
what needs it answers 503 ``service_unavailable`` with ``Retry-After``, naming the
dependency but never repeating the driver's text (it may name hosts or users).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

import kombu.exceptions
import redis.exceptions
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from workflows.manifest import ManifestError

logger = logging.getLogger(__name__)

Detail = dict[str, str]


class ApplicationError(Exception):
    """An expected failure with a machine-readable code, a message and details."""

    status = 400
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Iterable[Detail] = (),
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = list(details)


class ValidationFailed(ApplicationError):
    status = 400
    code = "validation_failed"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Forbidden(ApplicationError):
    status = 403
    code = "permission_denied"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "service_unavailable"


#: Seconds a client is told to wait (``Retry-After``) when a dependency is down.
RETRY_AFTER_SECONDS = 5
DATABASE = "database"
BROKER = "broker or cache (Redis)"
_OUTAGE_MESSAGES = {
    DATABASE: "The database is unavailable; try again shortly.",
    BROKER: "The broker or cache (Redis) is unavailable; try again shortly.",
}
# Modules whose socket-level ConnectionError/TimeoutError means that dependency is down.
_DRIVER_MODULES = {DATABASE: ("psycopg", "django.db"), BROKER: ("redis", "kombu", "amqp", "celery")}
_BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_OUTAGE_LOG_INTERVAL_S = 10.0
_outage_logged_at: dict[str, float] = {}


def outage_dependency(exc: BaseException) -> str | None:
    """Which dependency ``exc`` says is down (``DATABASE`` or ``BROKER``), or None if it is something else.

    Follows ``__cause__``/``__context__`` (kombu and Django wrap the driver's error); a bare
    ``ConnectionError`` or ``TimeoutError`` counts only when raised inside a driver.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DatabaseOperationalError, DatabaseInterfaceError)):
            return DATABASE
        if isinstance(current, _BROKER_ERRORS):
            return BROKER
        if isinstance(current, (ConnectionError, TimeoutError)):
            modules = [frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(current.__traceback__)]
            for dependency, prefixes in _DRIVER_MODULES.items():
                if any(module.startswith(prefixes) for module in modules):
                    return dependency
        current = current.__cause__ or current.__context__
    return None


def _log_outage(dependency: str, exc: BaseException, where: str) -> None:
    """A warning per dependency every few seconds, not one per request of an outage."""
    now = time.monotonic()
    if now - _outage_logged_at.get(dependency, -_OUTAGE_LOG_INTERVAL_S) >= _OUTAGE_LOG_INTERVAL_S:
        _outage_logged_at[dependency] = now
        logger.warning("%s unavailable at %s: %s: %s", dependency, where, type(exc).__name__, exc)


def outage_error(exc: BaseException, where: str) -> ServiceUnavailable | None:
    """The 503 to answer for ``exc`` if it is a dependency outage (logged, rate-limited)."""
    dependency = outage_dependency(exc)
    if dependency is None:
        return None
    _log_outage(dependency, exc, where)
    return ServiceUnavailable(_OUTAGE_MESSAGES[dependency], details=[{"path": "", "message": f"{dependency} down"}])


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def error_body(code: str, message: str, details: Iterable[Detail] = ()) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": list(details)}}


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def flatten_drf_detail(detail: Any, prefix: tuple[str | int, ...] = ()) -> list[Detail]:
    """Turn DRF's nested ``ValidationError.detail`` into ``[{path, message}]``."""
    if isinstance(detail, Mapping):
        out: list[Detail] = []
        for key, value in detail.items():
            part: tuple[str | int, ...] = prefix if key == "non_field_errors" else (*prefix, key)
            out.extend(flatten_drf_detail(value, part))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"path": _pointer(prefix), "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item:
                out.extend(flatten_drf_detail(item, (*prefix, index)))
        return out
    return [{"path": _pointer(prefix), "message": str(detail)}]


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ParseError: "parse_error",
}


def _drf_response(exc: drf.APIException, response: Response | None) -> Response:
    headers = dict(response.headers) if response is not None else {}
    headers.pop("Content-Type", None)
    if isinstance(exc, drf.ValidationError):
        body = error_body("validation_failed", "The request is not valid.", flatten_drf_detail(exc.detail))
        return Response(body, status=exc.status_code, headers=headers)
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    code = code or str(getattr(exc, "default_code", "error"))
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else exc.default_detail
    if isinstance(exc, drf.NotFound) and message == "Not found.":
        message = "No such object (or it belongs to another tenant)."
    return Response(error_body(code, str(message)), status=exc.status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every expected failure in the one shape."""
    from rest_framework.views import exception_handler as drf_handler

    if isinstance(exc, ApplicationError):
        headers = _retry_after() if isinstance(exc, ServiceUnavailable) else None
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status, headers=headers)
    outage = outage_error(exc, where=context["request"].path if context.get("request") else "api")
    if outage is not None:
        return exception_handler(outage, context)
    if isinstance(exc, ManifestError):
        details = [p.as_dict() for p in exc.problems]
        return Response(error_body(exc.code, exc.message, details), status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        return _drf_response(exc, drf_handler(exc, context))
    return None  # a bug: let Django log it and answer 500 through handler500


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "html" not in request.headers.get("Accept", "")


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if not _wants_json(request):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)  # type: ignore[arg-type,return-value]
    return JsonResponse(error_body("not_found", f"No route for {request.path}."), status=404)


def outage_response(request: HttpRequest, error: ServiceUnavailable) -> HttpResponse:
    """503 with ``Retry-After``: MC's error shape, or plain text for a browser (the admin)."""
    if _wants_json(request):
        response: HttpResponse = JsonResponse(error_body(error.code, error.message, error.details), status=503)
    else:
        response = HttpResponse(error.message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def handler500(request: HttpRequest) -> HttpResponse:
    # Called while the exception is being handled: an outage raised outside any view
    # (in a middleware) is still a 503, not a 500.
    exc = sys.exc_info()[1]
    outage = outage_error(exc, where=request.path) if exc is not None else None
    if outage is not None:
        return outage_response(request, outage)
    return JsonResponse(error_body("server_error", "Internal server error; it has been logged."), status=500)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)
