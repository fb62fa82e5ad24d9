"""A callable for the hard-time-limit test: it swallows the soft limit and keeps going."""

from __future__ import annotations

import contextlib
import time
from typing import Any


def ignore_soft_limit(seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(BaseException):  # the point: a package that ignores the soft limit
            time.sleep(0.1)
    return {"finished": True}
