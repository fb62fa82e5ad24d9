"""validate_manifest and check_manifest: every problem at once, schema and semantic."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .canonical import canonical_size_problem
from .constants import CANONICAL_SIZE_PREFIX, MAX_TASKS
from .errors import ManifestInvalid, ManifestTooLarge, Problem
from .fastcheck import Predicate, compile_schema
from .messages import schema_problems
from .pointers import sort_key
from .schema import schema_document
from .semantics import semantic_problems
from .values import scan_values

ExtraCheck = Callable[[dict[str, Any]], Iterable[Problem]]


@functools.cache
def _fast_check() -> Predicate:
    return compile_schema(schema_document())


def _within_task_limit(doc: Any) -> Any:
    """``doc`` with at most MAX_TASKS tasks, so that a huge list costs bounded time.

    The excess is reported once, at /tasks, by the semantic checks.
    """
    if isinstance(doc, dict) and isinstance(doc.get("tasks"), list) and len(doc["tasks"]) > MAX_TASKS:
        return {**doc, "tasks": doc["tasks"][:MAX_TASKS]}
    return doc


def _schema_problems(doc: Any) -> list[Problem]:
    if _fast_check()(doc):
        return []
    return schema_problems(doc)


def validate_manifest(doc: Any, *, extra_checks: Sequence[ExtraCheck] = ()) -> list[Problem]:
    """Return every problem in ``doc``: schema, semantic and size, sorted by path then message.

    An empty list means the manifest is valid. Paths are JSON pointers, ordered
    token by token with array indexes compared as numbers (/tasks/2 before
    /tasks/10). ``extra_checks`` (e.g. the task-package registry) are called
    with the document only when it is an object with a ``tasks`` list, even if
    other checks failed, so they must skip what they cannot read. Past
    MAX_TASKS tasks only the first MAX_TASKS are checked (and extra checks see
    only those). A document nested deeper than MAX_DOCUMENT_DEPTH gets only the
    nesting and non-JSON-value problems. Identical problems are reported once.

    A canonical form over MAX_MANIFEST_BYTES is reported as a problem at ``""``
    whose message starts with CANONICAL_SIZE_PREFIX; check_manifest turns it
    into ManifestTooLarge when it is the only problem (see is_size_problem).
    """
    scan = scan_values(doc)
    if scan.too_deep_path is not None:
        # jsonschema and the equality checks recurse through values; past this
        # depth they could hit the recursion limit, and the verdict is clear already.
        return _sorted(scan.problems)
    bounded = _within_task_limit(doc)
    problems = [*scan.problems, *_schema_problems(bounded), *semantic_problems(doc)]
    if isinstance(bounded, dict) and isinstance(bounded.get("tasks"), list):
        for check in extra_checks:
            problems.extend(check(bounded))
    if not scan.problems:  # only plain JSON can be measured
        size_problem = canonical_size_problem(doc, float_count=scan.float_count)
        if size_problem is not None:
            problems.append(size_problem)
    return _sorted(problems)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    """Distinct problems ordered by path (indexes numerically), then message."""
    return sorted(set(problems), key=lambda problem: (sort_key(problem.path), problem.message))


def is_size_problem(problem: Problem) -> bool:
    """Whether ``problem`` is the "canonical form too large" problem (HTTP 413)."""
    return problem.path == "" and problem.message.startswith(CANONICAL_SIZE_PREFIX)


def check_manifest(doc: Any, **kw: Any) -> dict[str, Any]:
    """Return ``doc`` if it is valid; raise otherwise.

    Raises ManifestTooLarge when the only problem is the canonical size, and
    ManifestInvalid carrying every problem in any other case. Keyword arguments
    go to validate_manifest.
    """
    problems = validate_manifest(doc, **kw)
    if not problems:
        return doc  # type: ignore[no-any-return]  # valid means it is an object
    if len(problems) == 1 and is_size_problem(problems[0]):
        raise ManifestTooLarge(problems[0].message, problems)
    raise ManifestInvalid(problems)
