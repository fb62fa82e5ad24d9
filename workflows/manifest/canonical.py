"""Canonical JSON (RFC 8785, JCS) and digests: the bytes a manifest is stored and signed as."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from .constants import CANONICAL_SIZE_PREFIX, MAX_MANIFEST_BYTES
from .errors import Problem

# How many more bytes RFC 8785 may spend on a float than Python's repr does: the
# longest JCS number is 25 characters ("-0.0000012345678901234567"), the shortest
# repr is 3 ("0.0").
_FLOAT_SLACK = 22


def canonical_json(doc: Any) -> bytes:
    """Serialise ``doc`` as RFC 8785 canonical JSON: sorted keys, no spaces, UTF-8.

    Raises rfc8785.CanonicalizationError (a ValueError) for values JSON cannot
    carry exactly; validate_manifest reports those as problems first.
    """
    return rfc8785.dumps(doc)


def sha256_digest(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as lowercase hex, without any prefix."""
    return hashlib.sha256(data).hexdigest()


def canonical_size_problem(doc: Any, *, float_count: int) -> Problem | None:
    """Report a problem at the root if the canonical form is over MAX_MANIFEST_BYTES.

    ``doc`` must already be free of non-JSON values (see values.scan_values).
    RFC 8785 is implemented in pure Python and costs ~20 ms per 1,000 tasks, so
    the exact size is only computed when a cheap upper bound is over the limit:
    the C json encoder's compact output has the same length as JCS except for
    floats, whose spelling may grow by at most _FLOAT_SLACK bytes.
    """
    compact = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        upper_bound = len(compact.encode("utf-8")) + _FLOAT_SLACK * float_count
    except UnicodeEncodeError:
        return Problem("", "the manifest contains text that is not valid Unicode")
    if upper_bound <= MAX_MANIFEST_BYTES:
        return None
    size = len(canonical_json(doc))
    if size <= MAX_MANIFEST_BYTES:
        return None
    return Problem("", f"{CANONICAL_SIZE_PREFIX} {size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes")
