"""parse_manifest: bytes or text in, one JSON-compatible document out, safely."""

from __future__ import annotations

from typing import Any

from .constants import FORMATS, MAX_DOCUMENT_DEPTH, MAX_MANIFEST_BYTES
from .errors import ManifestSyntaxError, ManifestTooLarge
from .json_loader import load_json
from .values import scan_values
from .yaml_loader import load_yaml

_BOM = "\ufeff"


def _too_large(size: int) -> ManifestTooLarge:
    return ManifestTooLarge(f"the manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes")


def _decode(source: bytes | str) -> str:
    """Return the text of ``source``, refusing anything over the limit before decoding."""
    if isinstance(source, str):
        # Every character is at least one UTF-8 byte: no need to encode a huge string.
        if len(source) > MAX_MANIFEST_BYTES:
            raise _too_large(len(source))
        try:
            size = len(source.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise ManifestSyntaxError(f"the manifest is not valid Unicode (character {error.start})") from None
        if size > MAX_MANIFEST_BYTES:
            raise _too_large(size)
        text = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_MANIFEST_BYTES:
            raise _too_large(len(source))
        try:
            text = bytes(source).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ManifestSyntaxError(f"the manifest is not valid UTF-8 (byte {error.start})") from None
    else:
        raise TypeError(f"parse_manifest() needs bytes or str, not {type(source).__name__}")
    return text.removeprefix(_BOM)


def _detect_format(text: str) -> str:
    return "json" if text.lstrip().startswith("{") else "yaml"


def parse_manifest(source: bytes | str, *, fmt: str = "auto") -> Any:
    """Parse one manifest document from YAML or JSON.

    ``fmt`` is ``"yaml"``, ``"json"`` or ``"auto"`` (JSON when the first
    non-blank character is ``{``, YAML otherwise). Size is checked as UTF-8
    bytes before anything is parsed.

    Raises ManifestTooLarge (over MAX_MANIFEST_BYTES) or ManifestSyntaxError (not
    UTF-8, malformed, more than one document, duplicate keys, NaN, alias bombs,
    nesting deeper than MAX_DOCUMENT_DEPTH ...). Returns the document as plain
    dicts, lists, strings, numbers, booleans and None; it is not yet validated.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    text = _decode(source)
    if fmt == "auto":
        fmt = _detect_format(text)
    if fmt == "yaml":
        return load_yaml(text)  # enforces the depth limit while it reads
    doc = load_json(text)
    too_deep = scan_values(doc).too_deep_path
    if too_deep is not None:
        raise ManifestSyntaxError(f"invalid JSON: nesting is deeper than {MAX_DOCUMENT_DEPTH} levels at {too_deep!r}")
    return doc
