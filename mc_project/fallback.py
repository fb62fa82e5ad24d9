"""The last route under /api/: a path that differs from a route only by its trailing slash is
served by that route; anything else is MC's JSON 404, never Django's HTML page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from mc_project.errors import error_body


def _twin(path: str) -> str:
    """``path`` with its trailing slash removed, or with one added."""
    return path[:-1] if path.endswith("/") else path + "/"


@csrf_exempt  # the view it hands over to checks CSRF itself (DRF's session authentication)
def api_fallback(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Serve ``/api/x/`` as ``/api/x`` (and the reverse); JSON 404 for an unknown path."""
    twin = _twin(request.path_info)
    try:
        match = resolve(twin)
    except Resolver404:
        match = None
    if match is not None and match.func is not api_fallback:
        request.path_info = twin
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
    return JsonResponse(error_body("not_found", f"No route for {request.path}."), status=404)
