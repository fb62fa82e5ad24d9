"""Plain functions mc/python may call out of the box (the default MC_PYTHON_ALLOWED_MODULES).

Each takes JSON values as keyword arguments and returns JSON: a dict becomes the
step's outputs, anything else is wrapped as ``{"result": value}``.
"""

from __future__ import annotations


def add(a: float, b: float) -> float:
    """The sum of two numbers (outputs ``{result}``)."""
    return a + b


def word_count(text: str) -> dict[str, int]:
    """Words, lines and characters in ``text``."""
    return {"words": len(text.split()), "lines": len(text.splitlines()), "characters": len(text)}


def sum_shards(values: list[float | None]) -> dict[str, float | int]:
    """Fan-in for a matrix task: the total of its shards' values (nulls skipped) and how many were summed.

    Use it with ``values: ${{ steps.<matrix task>.outputs.<key> }}``, which is the
    list of that key's values, one per shard.
    """
    numbers = [value for value in values if value is not None]
    return {"total": sum(numbers), "count": len(numbers)}
