"""Request body parsers that refuse oversized, deeply nested or ambiguous input.

DRF's stock JSON parser reads the whole stream, accepts duplicate keys, and lets a
deeply nested body escape as a ``RecursionError`` (a 500). These read at most
``MC_MAX_REQUEST_BYTES`` and turn every malformed body into a 400 or 413.

Two things JSON's grammar allows cannot be carried further: a number too large for a
double (``1e999`` reads as infinity, which canonical JSON refuses) and a lone UTF-16
surrogate (``"\\ud800"``, which is no Unicode character, so neither UTF-8 nor PostgreSQL
can hold it). Both are refused here, once for every endpoint, with their paths.
"""

from __future__ import annotations

import json
import math
import re
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from mc_project.errors import ApplicationError, Detail, PayloadTooLarge
from workflows.manifest import parse_manifest
from workflows.manifest.pointers import pointer

# A \uD800-\uDFFF escape: the only way a surrogate gets into a UTF-8 body. A valid pair
# decodes to one character; only a body with such an escape is searched for lone ones.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_FINITE = "number is too large: it must fit a double (at most about 1.8e308)"
_LONE_SURROGATE = "contains a lone UTF-16 surrogate, which is not a Unicode character"


def read_bounded(stream: IO[bytes] | None) -> bytes:
    """Read the body, refusing (413) anything over the configured limit."""
    if stream is None:
        return b""
    limit = settings.MC_MAX_REQUEST_BYTES
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable_pointer(path: tuple[str | int, ...]) -> str:
    """The pointer, with a lone surrogate of a key spelled ``\\udXXX`` (the response is UTF-8)."""
    return pointer(path).encode("utf-8", "backslashreplace").decode("utf-8")


def unrepresentable_values(document: Any) -> list[Detail]:
    """Where ``document`` holds a non-finite number or a string or key with a lone surrogate."""
    found: list[Detail] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if _has_lone_surrogate(key):
                    found.append({"path": _printable_pointer((*path, key)), "message": "key " + _LONE_SURROGATE})
                stack.append((child, (*path, key)))
        elif isinstance(value, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append({"path": _printable_pointer(path), "message": _NOT_FINITE})
        elif isinstance(value, str) and _has_lone_surrogate(value):
            found.append({"path": _printable_pointer(path), "message": _LONE_SURROGATE})
    return sorted(found, key=lambda detail: detail["path"])


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


class BoundedJSONParser(BaseParser):
    """Strict JSON: bounded size, no NaN/Infinity, no duplicate keys, no deep recursion."""

    media_type = "application/json"

    def parse(self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = read_bounded(stream)
        overflowed = False

        def finite_float(text: str) -> float:
            nonlocal overflowed
            number = float(text)
            overflowed = overflowed or not math.isfinite(number)
            return number

        try:
            document = json.loads(
                raw.decode("utf-8"),
                parse_constant=_reject_constant,
                parse_float=finite_float,
                object_pairs_hook=_unique_pairs,
            )
        except UnicodeDecodeError:
            raise ParseError("Request body is not UTF-8.") from None
        except json.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
        except RecursionError:
            raise ParseError("JSON body is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}.") from None
        if overflowed or _SURROGATE_ESCAPE.search(raw):
            details = unrepresentable_values(document)
            if details:
                raise ApplicationError(
                    "The JSON body holds values MC cannot store.", code="parse_error", details=details
                )
        return document


class ManifestTextParser(BaseParser):
    """A bare manifest as YAML: the body is the manifest, parsed safely.

    Returns ``{"manifest": <document>}`` so views read YAML and JSON bodies alike.
    """

    media_type = "application/yaml"

    def parse(self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        return {"manifest": parse_manifest(read_bounded(stream), fmt="yaml")}


class ManifestTextXParser(ManifestTextParser):
    media_type = "application/x-yaml"


class ManifestTextPlainYAMLParser(ManifestTextParser):
    media_type = "text/yaml"
