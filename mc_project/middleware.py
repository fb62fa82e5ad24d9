"""Middleware that refuses work before it starts."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from mc_project.errors import error_body, outage_error, outage_response


class RequestPathMiddleware:
    """Answer 400 to a path with a NUL character (``%00``) before any view sees it.

    A path parameter goes to the database as text, and PostgreSQL cannot hold U+0000:
    the query would fail with a ``DataError``, a 500, for what is the client's mistake.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return JsonResponse(error_body("bad_request", "The request path contains a NUL character."), status=400)
        return self.get_response(request)


class RequestSizeLimitMiddleware:
    """Answer 413 to a declared ``Content-Length`` over the limit without reading it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MC_MAX_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(error_body("bad_request", "Content-Length is not a number."), status=400)
        if length > limit:
            message = f"Request body of {length} bytes is larger than the limit of {limit} bytes."
            return JsonResponse(error_body("payload_too_large", message), status=413)
        return self.get_response(request)


class DependencyOutageMiddleware:
    """Answer 503 ``service_unavailable`` with ``Retry-After`` when a view finds a dependency down.

    DRF views get the same from the API's exception handler; this covers the rest (the
    admin, /readyz's neighbours, /metrics): PostgreSQL or Redis being down is no bug of MC's.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        outage = outage_error(exception, where=request.path)
        return outage_response(request, outage) if outage is not None else None
