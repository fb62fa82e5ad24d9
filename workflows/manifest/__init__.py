"""Manifest format v1: parse, validate and canonicalise workflow manifests.

Pure Python (no Django), so the CLI can use it too. Typical use::

    doc = parse_manifest(upload_bytes)          # ManifestTooLarge / ManifestSyntaxError
    check_manifest(doc)                         # ManifestInvalid (every problem) / ManifestTooLarge
    digest = sha256_digest(canonical_json(doc))
"""

from .canonical import canonical_json, sha256_digest
from .constants import MAX_MANIFEST_BYTES, MAX_SHARDS, MAX_TASKS, MAX_WITH_DEPTH, SCHEMA_ID
from .errors import (
    ManifestError,
    ManifestInvalid,
    ManifestSyntaxError,
    ManifestTooLarge,
    Problem,
)
from .loading import parse_manifest
from .schema import load_schema
from .validation import check_manifest, is_size_problem, validate_manifest

__all__ = [
    "MAX_MANIFEST_BYTES",
    "MAX_SHARDS",
    "MAX_TASKS",
    "MAX_WITH_DEPTH",
    "SCHEMA_ID",
    "ManifestError",
    "ManifestInvalid",
    "ManifestSyntaxError",
    "ManifestTooLarge",
    "Problem",
    "canonical_json",
    "check_manifest",
    "is_size_problem",
    "load_schema",
    "parse_manifest",
    "sha256_digest",
    "validate_manifest",
]
