"""Request throttles whose rates come from settings at request time (MC_THROTTLE_*)."""

from django.conf import settings
from rest_framework import throttling


class UserThrottle(throttling.UserRateThrottle):
    def get_rate(self) -> str | None:
        return settings.MC_THROTTLE_USER or None


class AnonThrottle(throttling.AnonRateThrottle):
    def get_rate(self) -> str | None:
        return settings.MC_THROTTLE_ANON or None
