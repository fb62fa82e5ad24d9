"""One iterative pass over a document checking it is plain, canonicalisable JSON.

Documents built in Python (not by parse_manifest) can hold tuples, sets, int
keys or huge integers; parsed ones can still hold integers beyond what an IEEE
double carries. Any of these would make canonical_json fail later, so they are
reported as problems, with a path, before anything is stored. So is a NUL
character (U+0000) in a string or key: JSON allows it, but PostgreSQL cannot
store it in text or jsonb, and what cannot be stored must not validate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .constants import MAX_DOCUMENT_DEPTH, MAX_SAFE_INTEGER
from .errors import Problem
from .pointers import pointer

NUL = "\x00"
NUL_MESSAGE = "contains a NUL character (U+0000), which MC cannot store"


@dataclass
class ValueScan:
    """What scan_values found: problems, the float count (for size bounds), depth."""

    problems: list[Problem] = field(default_factory=list)
    float_count: int = 0
    too_deep_path: str | None = None


def _scalar_problem(value: Any) -> str | None:
    """Why a non-container value is not canonical JSON, or None if it is fine."""
    if isinstance(value, (str, bool)) or value is None:
        return None
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return None
        return f"integer {value} is too large: canonical JSON allows at most ±{MAX_SAFE_INTEGER}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    return f"a {type(value).__name__} is not a JSON value"


def scan_values(doc: Any, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> ValueScan:
    """Walk ``doc`` without recursion; report non-JSON values and over-deep nesting."""
    scan = ValueScan()
    stack: list[tuple[Any, tuple[str | int, ...], int]] = []
    _visit(scan, stack, doc, (), 1, max_depth)
    while stack:
        container, path, depth = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, child in items:
            # Strings are most of any manifest: one C-level scan each, nothing more.
            if type(child) is str:
                if NUL in child:
                    scan.problems.append(Problem(pointer((*path, key)), NUL_MESSAGE))
            else:
                _visit(scan, stack, child, (*path, key), depth + 1, max_depth)
    return scan


def _visit(
    scan: ValueScan,
    stack: list[tuple[Any, tuple[str | int, ...], int]],
    value: Any,
    path: tuple[str | int, ...],
    depth: int,
    max_depth: int,
) -> None:
    """Check one value; queue it if it is a container that needs a look inside."""
    if isinstance(value, (dict, list)):
        if depth > max_depth:
            scan.too_deep_path = scan.too_deep_path or pointer(path)
            scan.problems.append(Problem(pointer(path), f"nesting is deeper than {max_depth} levels"))
        elif isinstance(value, dict) and not all(isinstance(key, str) for key in value):
            scan.problems.append(Problem(pointer(path), "object keys must be strings"))
        else:
            if isinstance(value, dict):
                nul_keys = (key for key in value if NUL in key)
                scan.problems.extend(Problem(pointer((*path, key)), "key " + NUL_MESSAGE) for key in nul_keys)
            stack.append((value, path, depth))
        return
    if isinstance(value, float):
        scan.float_count += 1
    elif isinstance(value, str) and NUL in value:
        scan.problems.append(Problem(pointer(path), NUL_MESSAGE))
        return
    message = _scalar_problem(value)
    if message:
        scan.problems.append(Problem(pointer(path), message))
