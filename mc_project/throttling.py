"""Request throttles whose rates come from settings at request time (MC_THROTTLE_*).

The counters live in the default cache (Redis when MC_CACHE_URL is set). A throttle is
protection, not a dependency: when the cache is unreachable the request goes through
(fail open) and a warning is logged, at most once a minute per process, so that reads
needing only the database keep working while Redis is down.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.exceptions
from django.conf import settings
from rest_framework import throttling

logger = logging.getLogger(__name__)

WARN_INTERVAL_S = 60.0
# What the cache backends raise when their server is down or too slow to answer.
CACHE_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, TimeoutError)


class _FailOpen:
    """Mixin: let the request through when the throttle's cache cannot be reached."""

    _warned_at = -WARN_INTERVAL_S

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return bool(super().allow_request(request, view))  # type: ignore[misc]
        except CACHE_UNREACHABLE as exc:
            now = time.monotonic()
            if now - _FailOpen._warned_at >= WARN_INTERVAL_S:
                _FailOpen._warned_at = now
                logger.warning(
                    "throttle cache unreachable (%s: %s): requests are not throttled until it is back",
                    type(exc).__name__,
                    exc,
                )
            return True


class UserThrottle(_FailOpen, throttling.UserRateThrottle):
    def get_rate(self) -> str | None:
        return settings.MC_THROTTLE_USER or None


class AnonThrottle(_FailOpen, throttling.AnonRateThrottle):
    def get_rate(self) -> str | None:
        return settings.MC_THROTTLE_ANON or None
