"""Schema and semantic validation of manifests: every problem, with a path and clear words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from workflows.manifest import (
    MAX_MANIFEST_BYTES,
    MAX_TASKS,
    MAX_WITH_DEPTH,
    SCHEMA_ID,
    ManifestInvalid,
    ManifestTooLarge,
    Problem,
    check_manifest,
    is_size_problem,
    load_schema,
    parse_manifest,
    validate_manifest,
)
from workflows.manifest.fastcheck import compile_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def base() -> dict[str, Any]:
    """A small valid manifest that each case below breaks in one way."""
    return {
        "name": "case-test",
        "version": "1.0.0",
        "inputs": {"x": {"type": "string", "default": "hi"}},
        "labels": {"team": "core"},
        "tasks": [
            {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "hi"}},
            {"id": "b", "uses": "pkg:mc/echo@1", "needs": ["a"]},
        ],
    }


def edit(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Return base() after ``change`` mutated it in place."""
    doc = base()
    change(doc)
    return doc


def set_at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets the value at a slash path like ``tasks/0/retries``."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = [int(t) if t.isdigit() else t for t in path.split("/")]
        target: Any = doc
        for token in parents:
            target = target[token]
        target[last] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = [int(t) if t.isdigit() else t for t in path.split("/")]
        target: Any = doc
        for token in parents:
            target = target[token]
        del target[last]

    return change


def tasks(*specs: tuple[str, list[str]]) -> Callable[[dict[str, Any]], None]:
    """A change that replaces the tasks with ``(id, needs)`` pairs."""
    return set_at("tasks", [{"id": i, "uses": "pkg:mc/echo@1", "needs": needs} for i, needs in specs])


def nested(depth: int) -> dict[str, Any]:
    """An object nested ``depth`` levels deep ({} is depth 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def many_tasks(count: int) -> list[dict[str, Any]]:
    return [{"id": f"t{i}", "uses": "pkg:mc/echo@1"} for i in range(count)]


# (case id, manifest, expected path, message fragment)
INVALID_CASES: list[tuple[str, Any, str, str]] = [
    ("not-an-object", ["name"], "", "the manifest must be an object, got a list"),
    ("null-document", None, "", "must be an object, got null"),
    ("missing-name", edit(drop("name")), "", "missing required key 'name'"),
    ("missing-version", edit(drop("version")), "", "missing required key 'version'"),
    ("missing-tasks", edit(drop("tasks")), "", "missing required key 'tasks'"),
    ("task-missing-id", edit(drop("tasks/0/id")), "/tasks/0", "missing required key 'id'"),
    ("task-missing-uses", edit(drop("tasks/0/uses")), "/tasks/0", "missing required key 'uses'"),
    ("input-missing-type", edit(drop("inputs/x/type")), "/inputs/x", "missing required key 'type'"),
    (
        "compensate-missing-uses",
        edit(set_at("tasks/0/compensate", {"with": {}})),
        "/tasks/0/compensate",
        "missing required key 'uses'",
    ),
    ("unknown-top-level-key", edit(set_at("colour", "red")), "/colour", "unknown key 'colour'"),
    ("unknown-task-key", edit(set_at("tasks/0/colour", 1)), "/tasks/0/colour", "unknown key 'colour'"),
    ("unknown-input-key", edit(set_at("inputs/x/colour", 1)), "/inputs/x/colour", "unknown key"),
    (
        "compensate-unknown-key",
        edit(set_at("tasks/0/compensate", {"uses": "pkg:mc/echo@1", "needs": ["a"]})),
        "/tasks/0/compensate/needs",
        "unknown key 'needs'",
    ),
    ("unknown-key-suggestion", edit(set_at("tasks/0/retry", 1)), "/tasks/0/retry", "did you mean 'retries'"),
    ("id-uppercase", edit(set_at("tasks/0/id", "Build")), "/tasks/0/id", "not a valid task id"),
    ("id-leading-digit", edit(set_at("tasks/0/id", "1st")), "/tasks/0/id", "not a valid task id"),
    ("id-trailing-newline", edit(set_at("tasks/0/id", "a\n")), "/tasks/0/id", "not a valid task id"),
    ("id-not-string", edit(set_at("tasks/0/id", 7)), "/tasks/0/id", "must be a string, got an integer"),
    ("uses-no-scheme", edit(set_at("tasks/0/uses", "mc/echo@1")), "/tasks/0/uses", "not a valid package reference"),
    (
        "uses-no-version",
        edit(set_at("tasks/0/uses", "pkg:mc/echo")),
        "/tasks/0/uses",
        "pkg:<namespace>/<name>@<version>",
    ),
    ("retries-negative", edit(set_at("tasks/0/retries", -1)), "/tasks/0/retries", "must be at least 0, got -1"),
    ("retries-eleven", edit(set_at("tasks/0/retries", 11)), "/tasks/0/retries", "must be at most 10, got 11"),
    ("retries-string", edit(set_at("tasks/0/retries", "3")), "/tasks/0/retries", "must be an integer, got a string"),
    (
        "resource-class-unknown",
        edit(set_at("tasks/0/resource_class", "huge")),
        "/tasks/0/resource_class",
        "must be one of small, medium, large",
    ),
    ("timeout-zero", edit(set_at("tasks/0/timeout_seconds", 0)), "/tasks/0/timeout_seconds", "must be at least 1"),
    ("timeout-too-long", edit(set_at("tasks/0/timeout_seconds", 86401)), "/tasks/0/timeout_seconds", "at most 86400"),
    (
        "timeout-fraction",
        edit(set_at("tasks/0/timeout_seconds", 1.5)),
        "/tasks/0/timeout_seconds",
        "must be an integer",
    ),
    (
        "duplicate-id",
        edit(tasks(("a", []), ("a", []))),
        "/tasks/1/id",
        "duplicate task id 'a', first defined at /tasks/0",
    ),
    ("unknown-need", edit(tasks(("a", []), ("b", ["zz"]))), "/tasks/1/needs/0", "needs unknown task 'zz'"),
    (
        "unknown-need-suggestion",
        edit(tasks(("build", []), ("b", ["biuld"]))),
        "/tasks/1/needs/0",
        "did you mean 'build'",
    ),
    (
        "self-need",
        edit(
            tasks(
                ("a", ["a"]),
            )
        ),
        "/tasks/0/needs/0",
        "task 'a' needs itself",
    ),
    ("two-cycle", edit(tasks(("a", ["b"]), ("b", ["a"]))), "/tasks/1/needs/0", "dependency cycle: a -> b -> a"),
    (
        "three-cycle",
        edit(tasks(("a", ["b"]), ("b", ["c"]), ("c", ["a"]))),
        "/tasks/2/needs/0",
        "dependency cycle: a -> b -> c -> a",
    ),
    ("need-not-unique", edit(set_at("tasks/1/needs", ["a", "a"])), "/tasks/1/needs/1", "'a' is listed more than once"),
    ("need-not-string", edit(set_at("tasks/1/needs", [5])), "/tasks/1/needs/0", "must be a string"),
    ("too-many-tasks", edit(set_at("tasks", many_tasks(MAX_TASKS + 1))), "/tasks", f"at most {MAX_TASKS} tasks"),
    ("tasks-empty", edit(set_at("tasks", [])), "/tasks", "must not be empty"),
    ("tasks-not-a-list", edit(set_at("tasks", {"a": {}})), "/tasks", "must be a list, got an object"),
    ("task-not-an-object", edit(set_at("tasks/0", "a")), "/tasks/0", "must be an object, got a string"),
    ("with-too-deep", edit(set_at("tasks/0/with", nested(MAX_WITH_DEPTH + 1))), "/tasks/0/with", "more than 32 levels"),
    (
        "compensate-with-too-deep",
        edit(set_at("tasks/0/compensate", {"uses": "pkg:mc/echo@1", "with": nested(33)})),
        "/tasks/0/compensate/with",
        "more than 32 levels",
    ),
    ("with-not-object", edit(set_at("tasks/0/with", ["x"])), "/tasks/0/with", "must be an object, got a list"),
    ("with-huge-integer", edit(set_at("tasks/0/with/n", 2**60)), "/tasks/0/with/n", "is too large"),
    ("version-short", edit(set_at("version", "1.0")), "/version", "not a valid version"),
    ("version-leading-zero", edit(set_at("version", "01.0.0")), "/version", "semantic version"),
    ("version-prefix-v", edit(set_at("version", "v1.0.0")), "/version", "not a valid version"),
    ("name-too-short", edit(set_at("name", "ab")), "/name", "not a valid workflow name"),
    ("name-with-space", edit(set_at("name", "my flow")), "/name", "3 to 64 letters"),
    ("description-too-long", edit(set_at("description", "x" * 2001)), "/description", "at most 2000 characters"),
    ("region-leading-dash", edit(set_at("region", "-eu")), "/region", "not a valid region"),
    (
        "input-default-wrong-type",
        edit(set_at("inputs/x/default", 5)),
        "/inputs/x/default",
        "does not match the declared type",
    ),
    (
        "input-default-not-in-enum",
        edit(set_at("inputs/x", {"type": "string", "enum": ["a", "b"], "default": "c"})),
        "/inputs/x/default",
        "not one of the enum values",
    ),
    (
        "input-enum-wrong-type",
        edit(set_at("inputs/x", {"type": "integer", "enum": [1, "two"]})),
        "/inputs/x/enum/1",
        "'two' is not an integer",
    ),
    (
        "input-required-with-default",
        edit(set_at("inputs/x/required", True)),
        "/inputs/x/default",
        "a required input cannot have a default",
    ),
    ("input-type-unknown", edit(set_at("inputs/x/type", "date")), "/inputs/x/type", "must be one of string, number"),
    ("input-bad-name", edit(set_at("inputs/1x", {"type": "string"})), "/inputs/1x", "not a valid input name"),
    ("label-bad-key", edit(set_at("labels/Team", "x")), "/labels/Team", "not a valid label key"),
    (
        "label-key-ends-with-slash",
        edit(lambda d: d["labels"].update({"a/": "x"})),
        "/labels/a~1",
        "not a valid label key",
    ),
    ("label-value-too-long", edit(set_at("labels/team", "x" * 257)), "/labels/team", "at most 256 characters"),
    ("label-value-not-string", edit(set_at("labels/team", 3)), "/labels/team", "must be a string"),
    (
        "data-class-bad",
        edit(set_at("tasks/0/data_classes", ["PII"])),
        "/tasks/0/data_classes/0",
        "not a valid data class",
    ),
    (
        "data-class-not-unique",
        edit(set_at("tasks/0/data_classes", ["pii", "pii"])),
        "/tasks/0/data_classes/1",
        "listed more than once",
    ),
    ("nul-in-description", edit(set_at("description", "a\x00b")), "/description", "NUL character"),
    ("nul-in-with-value", edit(set_at("tasks/0/with", {"message": "\x00"})), "/tasks/0/with/message", "NUL character"),
    ("nul-in-with-key", edit(set_at("tasks/0/with", {"k\x00": 1})), "/tasks/0/with/k\x00", "NUL character"),
    ("nul-in-list-item", edit(set_at("tasks/0/with", {"xs": ["ok", "\x00"]})), "/tasks/0/with/xs/1", "NUL character"),
    (
        "strategy-unknown-key",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": [1]}, "parallel": 2})),
        "/tasks/0/strategy/parallel",
        "unknown key 'parallel' (did you mean 'max_parallel'?)",
    ),
    (
        "strategy-missing-matrix",
        edit(set_at("tasks/0/strategy", {"max_parallel": 2})),
        "/tasks/0/strategy",
        "missing required key 'matrix'",
    ),
    ("strategy-not-object", edit(set_at("tasks/0/strategy", [1])), "/tasks/0/strategy", "must be an object"),
    ("matrix-empty", edit(set_at("tasks/0/strategy", {"matrix": {}})), "/tasks/0/strategy/matrix", "must not be empty"),
    (
        "matrix-too-many-keys",
        edit(set_at("tasks/0/strategy", {"matrix": {f"k{i}": [i] for i in range(9)}})),
        "/tasks/0/strategy/matrix",
        "must have at most 8 keys, got 9",
    ),
    (
        "matrix-values-empty",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": []}})),
        "/tasks/0/strategy/matrix/n",
        "must not be empty",
    ),
    (
        "matrix-values-not-a-list",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": 3}})),
        "/tasks/0/strategy/matrix/n",
        "must be a list, got an integer",
    ),
    (
        "matrix-too-many-values",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": list(range(257))}})),
        "/tasks/0/strategy/matrix/n",
        "must have at most 256 items, got 257",
    ),
    (
        "matrix-value-repeated",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": [{"a": 1}, {"a": 1}]}})),
        "/tasks/0/strategy/matrix/n/1",
        "listed more than once",
    ),
    (
        "matrix-bad-key",
        edit(set_at("tasks/0/strategy", {"matrix": {"1n": [1]}})),
        "/tasks/0/strategy/matrix/1n",
        "'1n' is not a valid matrix key",
    ),
    (
        "matrix-too-many-shards",
        edit(set_at("tasks/0/strategy", {"matrix": {"a": list(range(32)), "b": list(range(32))}})),
        "/tasks/0/strategy/matrix",
        "the matrix gives 1024 shards (32 x 32); a task may have at most 1000",
    ),
    (
        "max-parallel-zero",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": [1, 2]}, "max_parallel": 0})),
        "/tasks/0/strategy/max_parallel",
        "must be at least 1, got 0",
    ),
    (
        "max-parallel-fraction",
        edit(set_at("tasks/0/strategy", {"matrix": {"n": [1, 2]}, "max_parallel": 1.5})),
        "/tasks/0/strategy/max_parallel",
        "must be an integer",
    ),
    (
        "compensate-strategy",
        edit(set_at("tasks/0/compensate", {"uses": "pkg:mc/echo@1", "strategy": {"matrix": {"n": [1]}}})),
        "/tasks/0/compensate/strategy",
        "unknown key 'strategy'",
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [pytest.param(doc, path, fragment, id=case) for case, doc, path, fragment in INVALID_CASES],
)
def test_invalid_manifest_reports_path_and_message(doc: Any, path: str, fragment: str) -> None:
    problems = validate_manifest(doc)

    matching = [p for p in problems if p.path == path and fragment in p.message]
    assert matching, f"no problem at {path!r} containing {fragment!r}; got {problems}"


def test_enough_distinct_invalid_cases() -> None:
    assert len({case for case, *_ in INVALID_CASES}) >= 35


def test_check_manifest_raises_with_every_problem() -> None:
    doc = base()
    doc["colour"] = "red"
    doc["tasks"][0]["retries"] = 11
    doc["tasks"][1]["needs"] = ["zz"]
    doc["version"] = "1"

    with pytest.raises(ManifestInvalid) as caught:
        check_manifest(doc)

    error = caught.value
    assert (error.code, error.status) == ("manifest_invalid", 400)
    assert {p.path for p in error.problems} == {"/colour", "/tasks/0/retries", "/tasks/1/needs/0", "/version"}
    assert error.message == "the manifest has 4 problems"


def test_two_independent_cycles_are_both_reported() -> None:
    doc = edit(tasks(("a", ["b"]), ("b", ["a"]), ("c", ["d"]), ("d", ["e"]), ("e", ["c"])))

    cycles = [p for p in validate_manifest(doc) if "cycle" in p.message]

    assert cycles == [
        Problem("/tasks/1/needs/0", "dependency cycle: a -> b -> a"),
        Problem("/tasks/4/needs/0", "dependency cycle: c -> d -> e -> c"),
    ]


def test_each_cycle_is_reported_once_even_with_many_paths_into_it() -> None:
    doc = edit(tasks(("x", ["a"]), ("y", ["a"]), ("a", ["b"]), ("b", ["a"])))

    cycles = [p for p in validate_manifest(doc) if "cycle" in p.message]

    assert len(cycles) == 1


def test_long_chain_is_checked_without_recursion() -> None:
    chain = [("t0", [])] + [(f"t{i}", [f"t{i - 1}"]) for i in range(1, MAX_TASKS)]
    assert validate_manifest(edit(tasks(*chain))) == []

    chain[0] = ("t0", [f"t{MAX_TASKS - 1}"])
    problems = validate_manifest(edit(tasks(*chain)))
    assert len(problems) == 1
    assert problems[0].path == "/tasks/1/needs/0"  # t1 needs t0 closes t0 -> t4999 -> ... -> t1 -> t0
    assert problems[0].message.startswith("dependency cycle: t0 -> t4999 -> t4998")


def test_with_nested_exactly_to_the_limit_is_fine() -> None:
    doc = edit(set_at("tasks/0/with", nested(MAX_WITH_DEPTH)))

    assert validate_manifest(doc) == []


def test_many_tasks_at_the_limit_are_fine() -> None:
    assert validate_manifest(edit(set_at("tasks", many_tasks(MAX_TASKS)))) == []


def test_problems_are_sorted_by_path_with_numeric_indexes() -> None:
    doc = edit(set_at("tasks", many_tasks(12)))
    doc["tasks"][10]["retries"] = -1
    doc["tasks"][2]["retries"] = -1
    doc["colour"] = 1

    paths = [p.path for p in validate_manifest(doc)]

    assert paths == ["/colour", "/tasks/2/retries", "/tasks/10/retries"]


@pytest.mark.parametrize(
    "doc",
    [
        1,
        "tasks",
        {"tasks": 5, "inputs": []},
        {"tasks": [1, None, "x", {"id": 5, "needs": "a"}, {"id": "b", "needs": [1, None, "b"]}]},
        {"tasks": [{"id": "a", "with": 5, "compensate": 3}, {"id": "c", "compensate": {"with": [[[]]]}}]},
        {"inputs": {"x": 5, "y": {"type": 3}, "z": {"type": "string", "enum": 5, "default": 1}}},
        {"name": ("a", "b"), 1: "x", "labels": {1: "x"}, "tasks": [{"id": "a", "with": {"s": {1, 2}}}]},
        {"tasks": [{"id": "a", "with": {"x": float("nan"), "y": b"bytes"}}]},
    ],
    ids=["int", "string", "wrong-containers", "odd-tasks", "odd-with", "odd-inputs", "python-types", "non-json"],
)
def test_malformed_documents_give_problems_not_exceptions(doc: Any) -> None:
    problems = validate_manifest(doc)

    assert problems
    assert all(isinstance(p, Problem) and isinstance(p.path, str) for p in problems)


def test_a_matrix_of_exactly_the_shard_limit_is_fine() -> None:
    doc = edit(set_at("tasks/0/strategy", {"matrix": {"a": list(range(40)), "b": list(range(25))}, "max_parallel": 8}))

    assert validate_manifest(doc) == []
    assert compile_schema(load_schema())(doc)


def test_input_names_and_matrix_keys_are_told_apart_in_messages() -> None:
    doc = edit(set_at("tasks/0/strategy", {"matrix": {"1n": [1]}}))
    doc["inputs"]["2x"] = {"type": "string"}

    messages = {p.path: p.message for p in validate_manifest(doc)}

    assert "not a valid matrix key" in messages["/tasks/0/strategy/matrix/1n"]
    assert "not a valid input name" in messages["/inputs/2x"]


def test_extra_checks_run_on_task_documents_and_their_problems_are_merged() -> None:
    seen = []

    def registry_check(doc: dict[str, Any]) -> list[Problem]:
        seen.append(doc)
        return [Problem("/tasks/0/uses", "unknown package pkg:mc/echo@1")]

    problems = validate_manifest(base(), extra_checks=[registry_check])
    assert problems == [Problem("/tasks/0/uses", "unknown package pkg:mc/echo@1")]
    assert len(seen) == 1

    validate_manifest({"name": "x"}, extra_checks=[registry_check])
    assert len(seen) == 1  # no tasks list, no call


def test_oversized_canonical_form_is_a_413() -> None:
    doc = base()
    doc["tasks"][0]["with"]["blob"] = "x" * MAX_MANIFEST_BYTES

    problems = validate_manifest(doc)
    assert len(problems) == 1 and is_size_problem(problems[0])
    assert problems[0].path == ""

    with pytest.raises(ManifestTooLarge) as caught:
        check_manifest(doc)
    assert (caught.value.code, caught.value.status) == ("manifest_too_large", 413)


def test_oversized_manifest_with_other_problems_is_a_400_listing_all() -> None:
    doc = base()
    doc["tasks"][0]["with"]["blob"] = "x" * MAX_MANIFEST_BYTES
    doc["colour"] = 1

    with pytest.raises(ManifestInvalid) as caught:
        check_manifest(doc)
    assert len(caught.value.problems) == 2


def test_check_manifest_returns_a_valid_document() -> None:
    doc = base()

    assert check_manifest(doc) is doc


@pytest.mark.parametrize("name", ["hello.yaml", "full.yaml"])
def test_documented_examples_are_valid(name: str) -> None:
    doc = parse_manifest((EXAMPLES / name).read_bytes())

    assert validate_manifest(doc) == []


def test_schema_is_valid_2020_12_and_matches_the_constants() -> None:
    schema = load_schema()

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID
    assert schema["properties"]["tasks"]["maxItems"] == MAX_TASKS


def test_load_schema_gives_each_caller_its_own_copy() -> None:
    load_schema()["properties"].clear()

    assert "tasks" in load_schema()["properties"]


def test_full_example_in_the_docs_is_the_example_file() -> None:
    page = (EXAMPLES.parent / "manifest.md").read_text(encoding="utf-8")
    embedded = page.split("```yaml\n")[-1].split("```")[0]

    assert embedded == (EXAMPLES / "full.yaml").read_text(encoding="utf-8")


def test_documents_nested_too_deep_for_recursion_get_a_problem_not_a_crash() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    doc = edit(set_at("inputs/x", {"type": "array", "enum": [deep, deep]}))

    problems = validate_manifest(doc)

    assert {p.message for p in problems} == {"nesting is deeper than 64 levels"}
    assert all(p.path.startswith("/inputs/x/enum/") for p in problems)
