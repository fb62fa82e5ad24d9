"""Liveness and readiness probes.

``/healthz`` says the process answers. ``/readyz`` checks the database and the broker and
answers 503 (with ``Retry-After``) naming what failed, so an orchestrator stops sending
traffic. The probe is unauthenticated: it names the kind of error, and the log has the
driver's text (which may name hosts and users).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connections
from django.http import HttpRequest, JsonResponse

from mc_project.celery import app as celery_app
from mc_project.errors import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


def check_database() -> Exception | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # whatever fails here means "not ready"; it is reported, not hidden
        return exc
    return None


def check_broker() -> Exception | None:
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # as above
        return exc
    return None


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, Any]] = {}
    for name, check in (("database", check_database), ("broker", check_broker)):
        started = time.perf_counter()
        error = check()
        checks[name] = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
        if error is not None:
            checks[name]["error"] = f"{type(error).__name__}: {name} unreachable"
            logger.warning("readiness check %s failed: %s: %s", name, type(error).__name__, error)
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {
                "code": "not_ready",
                "message": f"Not ready: {', '.join(failed)} unreachable.",
                "details": [{"path": f"/checks/{name}", "message": checks[name]["error"]} for name in failed],
            },
        }
        return JsonResponse(body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return JsonResponse({"status": "ok", "checks": checks})
