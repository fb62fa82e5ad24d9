"""Plain functions mc/python may call out of the box (the default MC_PYTHON_ALLOWED_MODULES).

Each takes JSON values as keyword arguments and returns JSON: a dict becomes the
step's outputs, anything else is wrapped as ``{"result": value}``.
"""

from __future__ import annotations

from typing import Any


def add(a: float, b: float) -> float:
    """The sum of two numbers (outputs ``{result}``)."""
    return a + b


def word_count(text: str) -> dict[str, int]:
    """Words, lines and characters in ``text``."""
    return {"words": len(text.split()), "lines": len(text.splitlines()), "characters": len(text)}


def sum_shards(values: list[Any]) -> dict[str, float | int]:
    """Fan-in for a matrix task: the total of its shards' numbers and how many were summed.

    Use it with ``values: ${{ steps.<matrix task>.outputs.shards }}``. Each value is
    a number, or a shard's outputs holding one under ``result`` (what mc/python
    gives for a function returning a number); nulls are skipped.
    """
    numbers = []
    for value in values:
        if isinstance(value, dict):
            value = value.get("result")
        if value is not None:
            numbers.append(value)
    return {"total": sum(numbers), "count": len(numbers)}
