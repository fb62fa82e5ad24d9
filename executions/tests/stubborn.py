"""A callable for the hard-time-limit test: it swallows the soft limit and keeps going."""

from __future__ import annotations

import time
from typing import Any


def ignore_soft_limit(seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except BaseException:  # noqa: S110 - the point: a package that ignores the soft limit
            pass
    return {"finished": True}
