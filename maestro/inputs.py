"""``--input k=v`` options: values are JSON when they parse as JSON, strings otherwise."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

INPUTS_OPTION = Annotated[
    list[str] | None, typer.Option("--input", "-i", metavar="KEY=VALUE", help="an input (repeatable).")
]
REGION_OPTION = Annotated[str | None, typer.Option(help="the region to run in (default: the workflow's).")]


def inputs_parse(pairs: list[str] | None) -> dict[str, Any]:
    """``["name=world", "count=3"]`` -> ``{"name": "world", "count": 3}``; a bad pair is a usage error."""
    inputs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--input")
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs
