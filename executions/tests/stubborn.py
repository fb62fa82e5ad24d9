"""Callables for engine tests: one swallows the soft limit; one leaves a mark each time it runs."""

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


def mark(path: str, token: str, seconds: float = 0) -> dict[str, Any]:
    """Append ``token`` to the file at ``path`` (one line per run of the package), then sleep."""
    with open(path, "a") as marks:
        marks.write(token + "\n")
    time.sleep(seconds)
    return {"token": token, "seconds": seconds}
