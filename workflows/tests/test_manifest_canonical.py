"""canonical_json (RFC 8785) and sha256_digest: the stored bytes and their digest are stable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflows.manifest import (
    MAX_MANIFEST_BYTES,
    canonical_json,
    parse_manifest,
    sha256_digest,
)
from workflows.manifest.canonical import canonical_size_problem

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_key_order_and_whitespace_do_not_change_the_bytes() -> None:
    one = {"b": [1, {"y": 2, "x": 1}], "a": "z"}
    two = json.loads('{ "a" : "z",\n  "b" : [ 1, { "x" : 1, "y" : 2 } ] }')

    assert canonical_json(one) == canonical_json(two) == b'{"a":"z","b":[1,{"x":1,"y":2}]}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (333333333.33333329, b"333333333.3333333"),
        (4.5e-5, b"0.000045"),
        ("\u20ac", '"\u20ac"'.encode()),  # non-ASCII is raw UTF-8, not \u-escaped
        ('\u000f\n"\\', b'"\\u000f\\n\\"\\\\"'),
        ("\u2028", '"\u2028"'.encode()),
    ],
    ids=["integral-float", "negative-zero", "big", "small", "precision", "fixed", "euro", "escapes", "line-sep"],
)
def test_rfc8785_number_and_string_vectors(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_keys_sort_by_utf16_code_units_as_rfc8785_section_3_2_3() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]

    encoded = canonical_json(dict.fromkeys(keys, 0)).decode()

    assert list(json.loads(encoded)) == [
        "\r",
        "1",
        "\u0080",
        "\u00f6",
        "\u20ac",
        "\U0001f600",  # a surrogate pair sorts before U+FB33 in UTF-16
        "\ufb33",
    ]


def test_sha256_digest_is_lowercase_hex_without_prefix() -> None:
    assert sha256_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_digest(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("name", ["hello.yaml", "full.yaml"])
def test_digest_is_the_same_for_yaml_json_and_reordered_json(name: str) -> None:
    doc = parse_manifest((EXAMPLES / name).read_bytes())
    reordered = json.dumps(dict(reversed(list(doc.items()))), indent=4)

    digests = {
        sha256_digest(canonical_json(doc)),
        sha256_digest(canonical_json(parse_manifest(reordered))),
        sha256_digest(canonical_json(parse_manifest(json.dumps(doc).encode(), fmt="json"))),
    }

    assert len(digests) == 1


def test_hello_example_digest_is_pinned() -> None:
    # If this changes, every stored hello-world digest changes: update it on purpose only.
    doc = parse_manifest((EXAMPLES / "hello.yaml").read_bytes())

    assert sha256_digest(canonical_json(doc)) == HELLO_DIGEST


HELLO_DIGEST = sha256_digest(
    b'{"$schema":"https://maestro-conductor.dev/schemas/manifest.v1.json",'
    b'"description":"Greets someone, shouts it while waiting a moment in parallel, then reports.",'
    b'"inputs":{"name":{"default":"world","description":"Who to greet.","type":"string"},'
    b'"pause":{"default":1,"description":"Seconds the `wait` branch sleeps.","type":"number"}},'
    b'"name":"hello-world","region":"eu-west-1","tasks":['
    b'{"id":"greet","uses":"pkg:mc/echo@1","with":{"message":"hello, ${{ inputs.name }}"}},'
    b'{"id":"shout","needs":["greet"],"uses":"pkg:mc/echo@1","with":{"message":"${{ steps.greet.outputs.message }}!"}},'
    b'{"id":"wait","needs":["greet"],"uses":"pkg:mc/sleep@1","with":{"seconds":"${{ inputs.pause }}"}},'
    b'{"id":"report","needs":["shout","wait"],"uses":"pkg:mc/echo@1",'
    b'"with":{"message":"${{ steps.shout.outputs.message }} (after a ${{ steps.wait.outputs.slept }} s pause)"}}],'
    b'"version":"1.0.0"}'
)


# --- The size check's cheap bound must agree with the real canonical size ------------


def _padded(size: int, *, floats: int = 0) -> dict[str, Any]:
    """A document whose canonical form is exactly ``size`` bytes."""
    doc: dict[str, Any] = {"f": [1e16] * floats, "p": ""}
    doc["p"] = "x" * (size - len(canonical_json(doc)))
    assert len(canonical_json(doc)) == size
    return doc


@pytest.mark.parametrize("floats", [0, 1000])
def test_size_limit_is_exact(floats: int) -> None:
    assert canonical_size_problem(_padded(MAX_MANIFEST_BYTES, floats=floats), float_count=floats) is None

    problem = canonical_size_problem(_padded(MAX_MANIFEST_BYTES + 1, floats=floats), float_count=floats)
    assert problem is not None and f"{MAX_MANIFEST_BYTES + 1} bytes" in problem.message


def test_compact_json_and_canonical_json_have_the_same_length_without_floats() -> None:
    # The size bound relies on this: only floats are spelled differently.
    doc = {"s": '\x00\x1f\x7f"\\/\u2028\u00e9\U0001f600\t\n', "n": [0, -1, 2**53 - 1], "b": [True, None]}

    compact = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    assert len(compact) == len(canonical_json(doc))
