"""Strict JSON loading: no NaN or Infinity, no duplicate keys, positions in errors."""

from __future__ import annotations

import json
import math
from json.decoder import scanstring  # type: ignore[attr-defined]  # public, not in typeshed
from json.scanner import py_make_scanner  # type: ignore[attr-defined]
from typing import Any

from .errors import ManifestSyntaxError

_WHITESPACE = " \t\n\r"


class _DuplicateKey(Exception):
    """Raised from inside the decoder; ``position`` is filled in when known."""

    def __init__(self, key: str, position: int | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.position = position


class _BadNumber(Exception):
    """A number JSON cannot carry: NaN, Infinity, or a float out of range."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _BadNumber(f"the number {text} is out of range")
    return number


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, as json.JSONDecodeError counts."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


def _skip_whitespace(text: str, end: int) -> int:
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    return end


def _object_with_positions(
    s_and_end: tuple[str, int], strict: bool, scan_once: Any, *_: Any
) -> tuple[dict[str, Any], int]:
    """A json object parser that raises _DuplicateKey with the key's offset.

    Only used to locate a duplicate once the fast C decoder has found one; the
    values it returns are placeholders.
    """
    text, end = s_and_end
    seen: set[str] = set()
    end = _skip_whitespace(text, end)
    if text[end : end + 1] == "}":
        return {}, end + 1
    while True:
        key_start = end
        key, end = scanstring(text, end + 1, strict)
        if key in seen:
            raise _DuplicateKey(key, key_start)
        seen.add(key)
        end = _skip_whitespace(text, end) + 1  # past the ':'
        _, end = scan_once(text, _skip_whitespace(text, end))
        end = _skip_whitespace(text, end)
        if text[end : end + 1] == "}":
            return {}, end + 1
        end = _skip_whitespace(text, end + 1)  # past the ','


def _locate_duplicate(text: str) -> int | None:
    """Offset of the first duplicate key in ``text``, by a slow pure-Python re-parse."""
    decoder = json.JSONDecoder()
    # py_make_scanner takes parse_object from the decoder it is given (the C scanner would not).
    decoder.parse_object = _object_with_positions  # type: ignore[attr-defined]
    decoder.scan_once = py_make_scanner(decoder)  # type: ignore[attr-defined]
    try:
        decoder.decode(text)
    except _DuplicateKey as duplicate:
        return duplicate.position
    except (ValueError, RecursionError, StopIteration, IndexError):
        return None  # the fast decoder already said the text is well formed up to there
    return None


def load_json(text: str) -> Any:
    """Parse one JSON document strictly; raise ManifestSyntaxError with a position."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as error:
        raise ManifestSyntaxError(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}",
            line=error.lineno,
            column=error.colno,
        ) from None
    except _DuplicateKey as duplicate:
        raise _duplicate_error(text, duplicate.key) from None
    except _BadNumber as error:
        raise ManifestSyntaxError(f"invalid JSON: {error}") from None
    except RecursionError:
        raise ManifestSyntaxError("invalid JSON: nesting is too deep") from None
    except ValueError as error:  # e.g. an integer past Python's digit limit
        raise ManifestSyntaxError(f"invalid JSON: {error}") from None


def _duplicate_error(text: str, key: str) -> ManifestSyntaxError:
    offset = _locate_duplicate(text)
    if offset is None:
        return ManifestSyntaxError(f"invalid JSON: duplicate key {key!r}")
    line, column = _position(text, offset)
    return ManifestSyntaxError(
        f"invalid JSON at line {line}, column {column}: duplicate key {key!r}",
        line=line,
        column=column,
    )
