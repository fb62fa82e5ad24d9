"""The execution predicate of a signed receipt matches its published JSON Schema (docs/schemas)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from jsonschema import Draft202012Validator

from executions.models import StepRun
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.services import PREDICATE_TYPES, receipt_sign, statement_for
from receipts.signing.dsse import verify_envelope
from receipts.signing.runtime import verification_keys
from receipts.tests.test_chain import _run_finished

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "receipt-execution-predicate.v1.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(validator: Draft202012Validator, predicate: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(predicate)]


@pytest.mark.django_db
def test_a_signed_execution_predicate_matches_the_schema(
    validator: Draft202012Validator, publish: Any, tenant: Any, runner_user: Any
) -> None:
    receipt = _run_finished(publish, tenant, runner_user, "schema-run")
    # What a worker leaves on a step row: times and an attempt record (its pid is not signed).
    now = timezone.now()
    attempt = {"attempt": 1, "worker": "w@host", "pid": 7, "started_at": now.isoformat(), "outcome": "succeeded"}
    StepRun.objects.filter(execution_id=receipt.execution_id).update(
        started_at=now, finished_at=now, attempts=[{**attempt, "finished_at": now.isoformat()}]
    )
    receipt_sign(receipt.pk)
    receipt.refresh_from_db()

    signed = verify_envelope(receipt.envelope, verification_keys())
    assert signed["predicateType"] == PREDICATE_TYPES[ReceiptKind.EXECUTION]
    assert _errors(validator, signed["predicate"]) == []
    assert signed["predicate"]["steps"][0]["attempts"][0]["outcome"] == "succeeded"
    assert signed["predicate"]["policy_decisions"], "a run has its execute-stage decisions"
    assert statement_for(receipt) == signed  # what verification rebuilds is what was signed


@pytest.mark.django_db
def test_the_schema_refuses_fields_it_does_not_document(
    validator: Draft202012Validator, publish: Any, tenant: Any, runner_user: Any
) -> None:
    receipt = _run_finished(publish, tenant, runner_user, "schema-extra")
    receipt_sign(receipt.pk)
    predicate = statement_for(Receipt.objects.get(pk=receipt.pk))["predicate"]
    assert _errors(validator, predicate) == []

    assert _errors(validator, {**predicate, "surprise": 1}) != []
    assert _errors(validator, {key: value for key, value in predicate.items() if key != "steps"}) != []
    step = {**predicate["steps"][0], "output_digest": "ab" * 32}  # a digest without its sha256: prefix
    assert _errors(validator, {**predicate, "steps": [step]}) != []
