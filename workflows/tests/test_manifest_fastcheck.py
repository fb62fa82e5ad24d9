"""The schema's fast path (workflows/manifest/fastcheck.py) must never accept what jsonschema rejects."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from workflows.manifest import load_schema, parse_manifest
from workflows.manifest.fastcheck import compile_schema
from workflows.manifest.schema import get_validator
from workflows.tests.test_manifest_validation import EXAMPLES, INVALID_CASES


def _schema_valid(doc: Any) -> bool:
    return bool(get_validator().is_valid(doc))


def test_fast_path_accepts_the_examples() -> None:
    fast = compile_schema(load_schema())

    for name in ("hello.yaml", "full.yaml"):
        assert fast(parse_manifest((EXAMPLES / name).read_bytes()))


@pytest.mark.parametrize("doc", [pytest.param(doc, id=case) for case, doc, *_ in INVALID_CASES])
def test_fast_path_agrees_with_jsonschema_on_every_case(doc: Any) -> None:
    fast = compile_schema(load_schema())

    assert not fast(doc) or _schema_valid(doc)


_MUTANTS: list[Any] = [
    None,
    True,
    0,
    -1,
    1,
    11,
    2.0,
    1.5,
    2**60,
    "",
    "x",
    "a\n",
    "pkg:mc/echo@1",
    "small",
    "huge",
    "1.0.0",
    "x" * 3000,
    [],
    ["a", "a"],
    [1],
    [1, 1.0],
    [True, 1],
    [1, 2],
    ["a", 1],
    {},
    {"colour": 1},
    {"type": "string"},
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    path = rng.choice(_paths(doc)[1:])
    parent = doc
    for token in path[:-1]:
        parent = parent[token]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action < 0.3 and isinstance(parent, dict):
        parent[rng.choice(["colour", "id", "uses", "with", "default", "required", "enum"])] = rng.choice(_MUTANTS)
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(_MUTANTS))
    return doc


def test_fast_path_agrees_with_jsonschema_on_random_mutations() -> None:
    fast = compile_schema(load_schema())
    rng = random.Random(8785)
    full = parse_manifest((EXAMPLES / "full.yaml").read_bytes())
    disagreements = []

    for _ in range(2000):
        doc = _mutate(full, rng)
        if fast(doc) and not _schema_valid(doc):
            disagreements.append(json.dumps(doc, default=repr)[:300])

    assert disagreements == []
