"""Request body parsers that refuse oversized, deeply nested or ambiguous input.

DRF's stock JSON parser reads the whole stream, accepts duplicate keys, and lets a
deeply nested body escape as a ``RecursionError`` (a 500). These read at most
``MC_MAX_REQUEST_BYTES`` and turn every malformed body into a 400 or 413.
"""

from __future__ import annotations

import json
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from mc_project.errors import PayloadTooLarge
from workflows.manifest import parse_manifest


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
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_pairs)
        except UnicodeDecodeError:
            raise ParseError("Request body is not UTF-8.") from None
        except json.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
        except RecursionError:
            raise ParseError("JSON body is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}.") from None


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
