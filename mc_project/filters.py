"""Query filters shared by every app's filter sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time with any offset Python reads, handed to the database in UTC.

    PostgreSQL refuses offsets beyond ±15:59 ("time zone displacement out of range"),
    which Python accepts up to ±23:59; and an instant near year 1 or 9999 may have no
    UTC date at all. Both are the client's mistake, so both are a validation error.
    """

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("This date and time is out of range once converted to UTC.", code="invalid") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``IsoDateTimeFilter`` through ``UTCIsoDateTimeField``: every date filter of the API."""

    field_class = UTCIsoDateTimeField
