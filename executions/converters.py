"""``<execution_ref:...>``: an execution named by its full id or a unique prefix of it (as git does)."""

from __future__ import annotations

#: The shortest prefix accepted: MC prints the first 8 characters of an id everywhere.
MIN_PREFIX = 8


class ExecutionRefConverter:
    """A full UUID (with or without hyphens) or at least 8 of its leading hex digits."""

    regex = r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]){0,28}"

    def to_python(self, value: str) -> str:
        return value.lower()

    def to_url(self, value: object) -> str:
        return str(value)
