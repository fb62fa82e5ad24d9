"""parse_manifest: YAML and JSON in, plain JSON-compatible values out, hostile input refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestSyntaxError,
    ManifestTooLarge,
    loading,
    parse_manifest,
    yaml_loader,
)
from workflows.manifest.constants import MAX_DOCUMENT_DEPTH

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

_BACKENDS = {"pyyaml": yaml.SafeLoader}
if hasattr(yaml, "CSafeLoader"):
    _BACKENDS["libyaml"] = yaml.CSafeLoader


@pytest.fixture(params=sorted(_BACKENDS), autouse=True)
def yaml_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every test with libyaml's parser and with PyYAML's: they must behave the same."""
    monkeypatch.setattr(yaml_loader, "LOADER_CLASS", _BACKENDS[request.param])
    yield request.param


def syntax_error(source: bytes | str, **kw: Any) -> ManifestSyntaxError:
    with pytest.raises(ManifestSyntaxError) as caught:
        parse_manifest(source, **kw)
    assert (caught.value.code, caught.value.status) == ("manifest_syntax", 400)
    return caught.value


# --- Ordinary documents -------------------------------------------------------------


@pytest.mark.parametrize("name", ["hello.yaml", "full.yaml"])
def test_yaml_and_json_of_the_same_manifest_parse_equal(name: str) -> None:
    from_yaml = parse_manifest((EXAMPLES / name).read_bytes())
    as_json = json.dumps(from_yaml, indent=2)

    assert parse_manifest(as_json) == from_yaml
    assert parse_manifest(as_json.encode(), fmt="json") == from_yaml
    assert parse_manifest(as_json, fmt="yaml") == from_yaml  # JSON is YAML too


def test_parsed_documents_are_plain_json_values() -> None:
    doc = parse_manifest((EXAMPLES / "full.yaml").read_bytes())

    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_auto_format_picks_json_for_a_leading_brace() -> None:
    assert parse_manifest(' \n {"a": 1}') == {"a": 1}
    assert parse_manifest("a: 1") == {"a": 1}


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="fmt"):
        parse_manifest("a: 1", fmt="toml")


def test_utf8_byte_order_mark_is_ignored() -> None:
    assert parse_manifest("\ufeffa: 1".encode()) == {"a": 1}
    assert parse_manifest('\ufeff{"a": 1}'.encode()) == {"a": 1}


def test_yaml_dates_stay_strings() -> None:
    doc = parse_manifest("day: 2024-01-31\nwhen: 2001-12-14t21:59:43.10-05:00\n")

    assert doc == {"day": "2024-01-31", "when": "2001-12-14t21:59:43.10-05:00"}


def test_yaml_merge_keys_are_expanded_and_explicit_keys_win() -> None:
    doc = parse_manifest("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")

    assert doc["c"] == {"x": 1, "y": 3}


def test_yaml_scalars_follow_yaml_1_1_like_pyyaml() -> None:
    doc = parse_manifest("a: 0x1F\nb: 1_000\nc: 1.5\nd: yes\ne: ~\nf: '1'\ng: ! 12\n")

    assert doc == {"a": 31, "b": 1000, "c": 1.5, "d": True, "e": None, "f": "1", "g": "12"}


# --- Size -------------------------------------------------------------------------------


def test_one_byte_over_the_limit_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(text: str) -> Any:
        raise AssertionError("parsed an oversized manifest")

    monkeypatch.setattr(loading, "load_yaml", must_not_parse)
    monkeypatch.setattr(loading, "load_json", must_not_parse)

    for source in (b"#" * (MAX_MANIFEST_BYTES + 1), "{" * (MAX_MANIFEST_BYTES + 1)):
        with pytest.raises(ManifestTooLarge) as caught:
            parse_manifest(source)
        assert (caught.value.code, caught.value.status) == ("manifest_too_large", 413)


def test_size_counts_utf8_bytes_not_characters() -> None:
    text = "é" * (MAX_MANIFEST_BYTES // 2 + 1)  # fewer characters than the limit, more bytes

    with pytest.raises(ManifestTooLarge):
        parse_manifest(text)


def test_a_manifest_of_exactly_the_limit_is_accepted() -> None:
    head = "a: 1\n#"
    text = head + "x" * (MAX_MANIFEST_BYTES - len(head))

    assert parse_manifest(text.encode()) == {"a": 1}


# --- Hostile YAML ---------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused() -> None:
    error = syntax_error(billion_laughs())

    assert "alias bomb" in error.message


def test_modest_alias_use_is_fine() -> None:
    doc = parse_manifest(billion_laughs(levels=3))

    assert len(doc["c"]) == 9 and doc["c"][0] == doc["b"]


@pytest.mark.parametrize("source", ["a: &a [1, *a]\n", "a: &a {b: *a}\n"], ids=["sequence", "mapping"])
def test_recursive_alias_is_refused(source: str) -> None:
    assert "recursive alias" in syntax_error(source).message


@pytest.mark.parametrize(
    "source",
    ["[" * 100_000 + "]" * 100_000, "- " * 100_000 + "x", "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200))],
    ids=["flow", "compact-block", "indented-block"],
)
def test_deep_yaml_nesting_is_refused_without_crashing(source: str) -> None:
    assert "nesting is deeper than" in syntax_error(source).message


def test_nesting_up_to_the_document_limit_is_fine() -> None:
    depth = MAX_DOCUMENT_DEPTH
    assert parse_manifest("[" * depth + "]" * depth, fmt="yaml") is not None

    syntax_error("[" * (depth + 1) + "]" * (depth + 1), fmt="yaml")


def test_yaml_duplicate_key_is_refused_with_its_line() -> None:
    error = syntax_error("name: a\nversion: 1.0.0\nname: b\n")

    assert "duplicate key 'name' at line 3" in error.message
    assert (error.line, error.column) == (3, 1)


def test_multiple_documents_are_refused() -> None:
    assert "only one YAML document" in syntax_error("a: 1\n---\nb: 2\n").message


@pytest.mark.parametrize("source", ["", "# just a comment\n"])
def test_empty_manifest_is_refused(source: str) -> None:
    assert "empty" in syntax_error(source).message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("1: x\n", "mapping keys must be strings, got 1"),
        ("on: push\n", "quote it"),
        ("? [a]\n: x\n", "mapping keys must be strings"),
        ("~: x\n", "mapping keys must be strings, got None"),
    ],
    ids=["int", "bool", "sequence", "null"],
)
def test_non_string_keys_are_refused(source: str, fragment: str) -> None:
    assert fragment in syntax_error(source).message


@pytest.mark.parametrize(
    "source",
    ["b: !!binary aGVsbG8=\n", "s: !!set {a, b}\n", "x: !custom 1\n", "x: !!python/object/apply:os.system [ls]\n"],
    ids=["binary", "set", "custom", "python"],
)
def test_tags_outside_json_are_refused(source: str) -> None:
    assert "unsupported YAML tag" in syntax_error(source).message


@pytest.mark.parametrize("source", ["x: .nan\n", "x: .inf\n", "x: -.inf\n"])
def test_yaml_non_finite_numbers_are_refused(source: str) -> None:
    assert "not a finite number" in syntax_error(source).message


def test_malformed_yaml_names_line_and_column() -> None:
    error = syntax_error("name: x\ntasks: [a\n")

    assert error.message.startswith("invalid YAML")
    assert error.line is not None and f"line {error.line}, column {error.column}" in error.message


def test_forbidden_character_is_refused_with_position() -> None:
    error = syntax_error("a: 1\nb: \x00\n")

    assert "U+0000" in error.message and error.line == 2


# --- Hostile JSON -------------------------------------------------------------------


def test_json_duplicate_key_is_refused_with_its_position() -> None:
    error = syntax_error('{"a": 1,\n "b": {"c": 1, "c": 2}}')

    assert "duplicate key 'c'" in error.message
    assert (error.line, error.column) == (2, 16)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_json_non_finite_numbers_are_refused(number: str) -> None:
    syntax_error(f'{{"x": {number}}}')


def test_malformed_json_names_line_and_column() -> None:
    error = syntax_error('{"a": 1,\n  "b": }')

    assert error.message.startswith("invalid JSON at line 2, column 8")
    assert (error.line, error.column) == (2, 8)


@pytest.mark.parametrize("depth", [100_000, MAX_DOCUMENT_DEPTH + 5])
def test_deep_json_nesting_is_refused_without_crashing(depth: int) -> None:
    assert "nesting is" in syntax_error('{"a": ' + "[" * depth + "]" * depth + "}").message


# --- Encoding ---------------------------------------------------------------------------


def test_non_utf8_bytes_are_refused() -> None:
    error = syntax_error("name: caf\xe9\n".encode("latin-1"))

    assert "not valid UTF-8 (byte 9)" in error.message


def test_lone_surrogates_in_text_are_refused() -> None:
    assert "not valid Unicode" in syntax_error("a: \ud800").message


def test_other_types_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_manifest(123)  # type: ignore[arg-type]


def test_aliased_values_are_independent_copies() -> None:
    doc = parse_manifest("base: &b {x: [1]}\none: *b\ntwo: {<<: *b}\n")

    doc["one"]["x"].append(2)

    assert doc["base"] == {"x": [1]} and doc["two"] == {"x": [1]}
