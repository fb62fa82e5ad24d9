"""Execution inputs checked against the manifest's ``inputs`` declarations (pure Python)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.manifest import Problem
from workflows.manifest.messages import did_you_mean, json_type
from workflows.manifest.pointers import pointer

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _has_type(value: Any, declared: str) -> bool:
    if isinstance(value, bool) and declared != "boolean":
        return False
    if declared == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[declared])


def inputs_resolve(manifest: Mapping[str, Any], given: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The inputs an execution runs with (given values, then defaults) and every problem.

    Problems have paths under ``/inputs``: unknown names, missing required inputs, wrong
    types and values outside ``enum``.
    """
    declared: Mapping[str, Any] = manifest.get("inputs") or {}
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return {}, [Problem("/inputs", f"must be an object, not {json_type(given)}")]
    problems = []
    resolved: dict[str, Any] = {}
    for name, value in given.items():
        path = pointer(("inputs", name))
        spec = declared.get(name)
        if spec is None:
            hint = did_you_mean(name, declared)
            problems.append(Problem(path, f"unknown input {name!r}{hint}"))
            continue
        if not _has_type(value, spec["type"]):
            problems.append(Problem(path, f"must be of type {spec['type']}, not {json_type(value)}"))
            continue
        if "enum" in spec and value not in spec["enum"]:
            problems.append(Problem(path, f"must be one of {spec['enum']}"))
            continue
        resolved[name] = value
    for name, spec in declared.items():
        if name in given:
            continue
        if "default" in spec:
            resolved[name] = spec["default"]
        elif spec.get("required"):
            problems.append(Problem(pointer(("inputs", name)), "is required"))
    return resolved, problems
