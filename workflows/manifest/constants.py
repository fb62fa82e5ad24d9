"""Limits, identifiers and message vocabulary of manifest format v1.

Everything a reader might want to tune or cite lives here, so the rest of the
package has no magic numbers.
"""

from __future__ import annotations

from typing import Final

# --- Public limits -------------------------------------------------------------

#: Largest manifest accepted, as UTF-8 bytes of the upload and of its canonical JSON.
MAX_MANIFEST_BYTES: Final = 1024 * 1024
#: Most tasks one manifest may declare (also the schema's tasks.maxItems).
MAX_TASKS: Final = 5000
#: Deepest nesting allowed inside a task's ``with`` block (``with: {}`` is depth 1).
MAX_WITH_DEPTH: Final = 32
#: Most shards one task's strategy.matrix may produce (the product of its list lengths).
MAX_SHARDS: Final = 1000

SCHEMA_ID: Final = "https://maestro-conductor.dev/schemas/manifest.v1.json"

# --- Loader limits ---------------------------------------------------------------

#: Deepest container nesting accepted anywhere in a document (the root is depth 1).
#: Well above what the schema allows (a with block at depth 4 plus 32 levels), far
#: below what would exhaust Python's recursion limit in the libraries we call.
MAX_DOCUMENT_DEPTH: Final = 64

#: Most nodes a YAML document may have once aliases are expanded. In canonical JSON
#: n nodes take at least 2n - 1 bytes (every node but the root comes with a comma,
#: colon or bracket), so a document past this could never pass the canonical-size
#: limit anyway; refusing it while reading defuses alias bombs before any expansion.
MAX_YAML_NODES: Final = MAX_MANIFEST_BYTES // 2 + 1

#: Canonical JSON numbers are IEEE doubles: larger integers lose precision.
MAX_SAFE_INTEGER: Final = 2**53 - 1

FORMATS: Final = frozenset({"auto", "yaml", "json"})

# --- Packaging ---------------------------------------------------------------------

#: Where the schema ships inside this package (read with importlib.resources).
SCHEMA_DIR: Final = "schema"
SCHEMA_FILE: Final = "manifest.v1.json"

# --- Error codes and HTTP statuses -----------------------------------------------

CODE_TOO_LARGE: Final = "manifest_too_large"
CODE_SYNTAX: Final = "manifest_syntax"
CODE_INVALID: Final = "manifest_invalid"
STATUS_TOO_LARGE: Final = 413
STATUS_BAD_REQUEST: Final = 400

#: Message of the problem reported when the canonical form is over MAX_MANIFEST_BYTES;
#: check_manifest maps a lone problem with this prefix to ManifestTooLarge (413).
CANONICAL_SIZE_PREFIX: Final = "the canonical manifest is"

# --- Human wording for schema errors ----------------------------------------------

#: JSON Schema type name -> how a message names a value of that type.
TYPE_NOUNS: Final = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

#: ``$defs`` name -> (what the value is, what it must look like), used when a
#: value fails that definition's pattern. Keep in step with the schema file.
PATTERN_HINTS: Final = {
    "workflowName": ("workflow name", "3 to 64 letters, digits, '-' or '_'"),
    "semver": ("version", "a semantic version such as 1.0.0 or 2.1.0-rc.1"),
    "region": ("region", "2 to 32 letters, digits or '-', not starting with '-', e.g. eu-west-1"),
    "labelKey": (
        "label key",
        "up to 64 lowercase letters, digits, '.', '_', '/' or '-', starting and ending with a letter or digit",
    ),
    "inputName": ("input name", "a letter or '_', then up to 63 letters, digits or '_'"),
    "matrixKey": ("matrix key", "a letter or '_', then up to 63 letters, digits or '_'"),
    "taskId": (
        "task id",
        "a lowercase letter, then up to 62 lowercase letters, digits, '_' or '-'",
    ),
    "uses": ("package reference", "pkg:<namespace>/<name>@<version>, e.g. pkg:mc/echo@1"),
    "dataClass": (
        "data class",
        "a lowercase letter, then up to 31 lowercase letters, digits, '_' or '-'",
    ),
}
