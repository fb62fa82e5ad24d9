"""JSON pointers (RFC 6901), the path format of every Problem."""

from __future__ import annotations

from collections.abc import Iterable


def escape_token(token: str | int) -> str:
    """Escape one reference token: ``~`` becomes ``~0`` and ``/`` becomes ``~1``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Iterable[str | int]) -> str:
    """Join tokens into a pointer; no tokens give ``""``, the document root."""
    return "".join("/" + escape_token(token) for token in tokens)


def sort_key(path: str) -> tuple[tuple[int, int, str], ...]:
    """Order pointers token by token, array indexes numerically (/tasks/2 < /tasks/10)."""
    tokens = path.split("/")[1:]
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in tokens)
