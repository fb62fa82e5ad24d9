"""in-toto Statement v1: the signed document inside every receipt's DSSE envelope.

https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md ::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "...", "digest": {"sha256": "<hex>"}}, ...],
     "predicateType": "<URI>",
     "predicate": {...}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Subject(TypedDict):
    """One thing the statement is about, named and identified by its digests."""

    name: str
    digest: dict[str, str]


class Statement(TypedDict):
    """An in-toto Statement v1, its fields named as the specification spells them."""

    _type: str
    subject: list[Subject]
    predicateType: str
    predicate: dict[str, Any]


class StatementError(ValueError):
    """A document is not a well-formed in-toto Statement v1; the message says which part."""


def subject(name: str, sha256: str) -> Subject:
    """A subject identified by its SHA-256 (lowercase hex, with or without a ``sha256:`` prefix)."""
    digest = sha256.removeprefix("sha256:")
    if not _SHA256_HEX.fullmatch(digest):
        raise StatementError(f"subject {name!r}: sha256 must be 64 lowercase hex digits, got {sha256!r}")
    return {"name": name, "digest": {"sha256": digest}}


def build_statement(*, subjects: Sequence[Subject], predicate_type: str, predicate: Mapping[str, Any]) -> Statement:
    """An in-toto Statement v1 about ``subjects``; raises ``StatementError`` if it would not verify."""
    statement: Statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s["name"], "digest": dict(s["digest"])} for s in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return check_statement(statement)


def check_statement(doc: Any) -> Statement:
    """Return ``doc`` if it is an in-toto Statement v1, else raise ``StatementError`` naming the fault."""
    if not isinstance(doc, dict):
        raise StatementError(f"expected a JSON object, got {_json_type(doc)}")
    if doc.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"_type is {doc.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementError("subject must be a non-empty list")
    for index, item in enumerate(subjects):
        _check_subject(index, item)
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise StatementError("predicateType must be a non-empty string")
    if "predicate" in doc and not isinstance(doc["predicate"], dict):
        raise StatementError(f"predicate must be a JSON object, got {_json_type(doc['predicate'])}")
    return cast(Statement, doc)


def _check_subject(index: int, item: Any) -> None:
    where = f"subject[{index}]"
    if not isinstance(item, dict):
        raise StatementError(f"{where} must be a JSON object")
    if "name" in item and not isinstance(item["name"], str):
        raise StatementError(f"{where}.name must be a string")
    digest = item.get("digest")
    if not isinstance(digest, dict) or not digest:
        raise StatementError(f"{where}.digest must be a non-empty object of algorithm: hex")
    for algorithm, value in digest.items():
        if not isinstance(value, str) or not value:
            raise StatementError(f"{where}.digest.{algorithm} must be a non-empty string")
    if "sha256" in digest and not _SHA256_HEX.fullmatch(digest["sha256"]):
        raise StatementError(f"{where}.digest.sha256 must be 64 lowercase hex digits")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else type(value).__name__)
