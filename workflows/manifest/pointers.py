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
    """Order pointers token by token, array indexes numerically (/tasks/2 < /tasks/10).

    Only ASCII digits make an index: ``str.isdigit`` is also true of "²" or "⑤", which
    ``int`` refuses, and any of them can be a key of a document a client sent.
    """
    tokens = path.split("/")[1:]
    return tuple((0, int(t), "") if is_index(t) else (1, 0, t) for t in tokens)


def is_index(token: str) -> bool:
    """Whether ``token`` is an array index: ASCII digits only, which ``int`` reads."""
    return token.isascii() and token.isdigit()
