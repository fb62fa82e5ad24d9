"""The v1 JSON Schema: loading it from package data and building its validator once."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from .constants import SCHEMA_DIR, SCHEMA_FILE


@functools.cache
def schema_document() -> dict[str, Any]:
    """The parsed schema, shared: read-only for this package's own use."""
    source = resources.files(__package__).joinpath(SCHEMA_DIR).joinpath(SCHEMA_FILE)
    schema: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return schema


def load_schema() -> dict[str, Any]:
    """Return the manifest v1 JSON Schema (read once; each caller gets its own copy)."""
    return copy.deepcopy(schema_document())


@functools.cache
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a schema pattern with ECMA-262's meaning of a final ``$``.

    In Python ``$`` also matches before a trailing newline, which would let
    ``"build\\n"`` pass as a task id; ``\\Z`` matches only at the very end.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """The ``pattern`` keyword, using compile_pattern instead of a bare re.search."""
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


ManifestValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def get_validator() -> Any:
    """The jsonschema validator for the v1 schema, built once per process.

    No format checker: the schema uses no ``format`` keyword.
    """
    return ManifestValidator(schema_document())


@functools.cache
def pattern_names() -> dict[str, str]:
    """Map each pattern in ``$defs`` to its definition's name (for error messages)."""
    return {
        definition["pattern"]: name
        for name, definition in schema_document()["$defs"].items()
        if "pattern" in definition
    }
