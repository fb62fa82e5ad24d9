"""Liveness and readiness probes.

``/healthz`` says the process answers. ``/readyz`` checks the database and the broker and
answers 503 naming what failed, so an orchestrator stops sending traffic.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connections
from django.http import HttpRequest, JsonResponse

from mc_project.celery import app as celery_app

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def check_broker() -> str | None:
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, Any]] = {}
    for name, check in (("database", check_database), ("broker", check_broker)):
        started = time.perf_counter()
        error = check()
        checks[name] = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
        if error:
            checks[name]["error"] = error
            logger.warning("readiness check %s failed: %s", name, error)
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
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
