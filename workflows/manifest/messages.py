"""Turn jsonschema's errors into Problems a person can act on.

jsonschema reports an unknown key at the object that holds it ("Additional
properties are not allowed ('colour' was unexpected)"); we point at the key
itself and say "unknown key 'colour'". Each keyword we use gets its own wording;
the schema has no anyOf/oneOf, so every error is already a leaf.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jsonschema import ValidationError

from .constants import PATTERN_HINTS, TYPE_NOUNS
from .errors import Problem
from .pointers import pointer
from .schema import get_validator, pattern_names

_Translator = Callable[[ValidationError], Iterator[Problem]]


def json_type(value: Any) -> str:
    """Name ``value``'s JSON type the way a message should ("a list", "null")."""
    if isinstance(value, bool):
        return TYPE_NOUNS["boolean"]
    for name, python_type in (("string", str), ("integer", int), ("number", float)):
        if isinstance(value, python_type):
            return TYPE_NOUNS[name]
    if isinstance(value, dict):
        return TYPE_NOUNS["object"]
    if isinstance(value, list):
        return TYPE_NOUNS["array"]
    return TYPE_NOUNS["null"] if value is None else type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for a close choice, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _path(error: ValidationError, *more: str | int) -> str:
    return pointer([*error.absolute_path, *more])


def _unknown_keys(error: ValidationError) -> Iterator[Problem]:
    known = error.schema.get("properties", {})
    for key in error.instance:
        if key not in known:
            hint = did_you_mean(key, known) if isinstance(key, str) else ""
            yield Problem(_path(error, key), f"unknown key {key!r}{hint}")


def _missing_keys(error: ValidationError) -> Iterator[Problem]:
    for key in error.validator_value:
        if key not in error.instance:
            yield Problem(_path(error), f"missing required key {key!r}")


def _wrong_type(error: ValidationError) -> Iterator[Problem]:
    expected = TYPE_NOUNS.get(error.validator_value, error.validator_value)
    message = f"must be {expected}, got {json_type(error.instance)}"
    if not error.absolute_path:
        message = f"the manifest {message}"
    yield Problem(_path(error), message)


def _not_in_enum(error: ValidationError) -> Iterator[Problem]:
    options = ", ".join(str(option) for option in error.validator_value)
    yield Problem(_path(error), f"must be one of {options}, got {error.instance!r}")


def _bad_pattern(error: ValidationError) -> Iterator[Problem]:
    name = pattern_names().get(error.validator_value, "")
    what, hint = PATTERN_HINTS.get(name, ("value", f"a match for {error.validator_value}"))
    message = f"{error.instance!r} is not a valid {what}: expected {hint}"
    if "propertyNames" in error.absolute_schema_path:
        # The error is about a key, which jsonschema reports at its parent object.
        yield Problem(_path(error, error.instance), message)
    else:
        yield Problem(_path(error), message)


def _duplicate_items(error: ValidationError) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, item in enumerate(error.instance):
        key = json.dumps(item, sort_keys=True, default=repr)
        if key in seen:
            yield Problem(_path(error, index), f"{item!r} is listed more than once")
            return
        seen.add(key)
    yield Problem(_path(error), "must not list the same value twice")


def _limit(template: str) -> _Translator:
    def translate(error: ValidationError) -> Iterator[Problem]:
        instance = error.instance
        size = len(instance) if isinstance(instance, (str, list, dict)) else instance
        yield Problem(_path(error), template.format(limit=error.validator_value, got=size))

    return translate


def _min_items(error: ValidationError) -> Iterator[Problem]:
    if error.validator_value == 1:
        yield Problem(_path(error), "must not be empty")
    else:
        yield from _limit("must have at least {limit} items, got {got}")(error)


def _min_properties(error: ValidationError) -> Iterator[Problem]:
    if error.validator_value == 1:
        yield Problem(_path(error), "must not be empty")
    else:
        yield from _limit("must have at least {limit} keys, got {got}")(error)


_TRANSLATORS: dict[str, _Translator] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "type": _wrong_type,
    "enum": _not_in_enum,
    "pattern": _bad_pattern,
    "uniqueItems": _duplicate_items,
    "minimum": _limit("must be at least {limit}, got {got}"),
    "maximum": _limit("must be at most {limit}, got {got}"),
    "minLength": _limit("must be at least {limit} characters long, got {got}"),
    "maxLength": _limit("must be at most {limit} characters long, got {got}"),
    "minItems": _min_items,
    "maxItems": _limit("must have at most {limit} items, got {got}"),
    "minProperties": _min_properties,
    "maxProperties": _limit("must have at most {limit} keys, got {got}"),
}


def translate(error: ValidationError) -> Iterator[Problem]:
    """Yield the Problems one jsonschema error stands for."""
    translator = _TRANSLATORS.get(str(error.validator))
    if translator is None:  # a keyword added to the schema without wording yet
        yield Problem(_path(error), error.message)
    else:
        yield from translator(error)


def schema_problems(doc: Any) -> list[Problem]:
    """Every schema violation in ``doc``, as Problems (duplicates are possible)."""
    return [problem for error in get_validator().iter_errors(doc) for problem in translate(error)]
