"""Receipts of runs and publishes: signed off the request path into each tenant's chain, and verified.

The first tests run a real worker (it listens on ``mc.receipts`` too); the tamper tests sign
in-process and then change what was signed.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.choices import ExecutionMode, ExecutionStatus
from executions.models import StepRun
from executions.services import execution_cancel, execution_create
from executions.tests.conftest import wait_finished, workflow_doc
from mc_project.tenancy.choices import Role
from receipts.choices import ReceiptKind
from receipts.models import Receipt
from receipts.services import PREDICATE_TYPES, receipt_sign
from receipts.signing.dsse import verify_envelope
from receipts.signing.runtime import verification_keys
from receipts.verification import chain_verify, receipt_verify
from tests.workers import WorkerProcess, wait_until

OK = workflow_doc(
    "receipt-ok",
    [
        {"id": "hello", "uses": "pkg:mc/echo@1", "with": {"message": "hi"}},
        {
            "id": "bye",
            "uses": "pkg:mc/echo@1",
            "with": {"message": "${{ steps.hello.outputs.message }}"},
            "needs": ["hello"],
        },
    ],
)
FAILS = workflow_doc("receipt-fails", [{"id": "boom", "uses": "pkg:mc/fail@1", "with": {"message": "no"}}])
SLOW = workflow_doc("receipt-slow", [{"id": "nap", "uses": "pkg:mc/sleep@1", "with": {"seconds": 5}}])


def _signed(execution: Any) -> Receipt:
    def signed() -> Receipt | None:
        return Receipt.objects.filter(execution=execution, kind=ReceiptKind.EXECUTION, signed_at__isnull=False).first()

    return wait_until(signed, timeout=20, message=f"the receipt of {execution.pk}")  # type: ignore[no-any-return]


@pytest.fixture
def api(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.VIEWER, tenant)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_finished_run_gets_a_signed_receipt_in_the_tenants_chain(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any, api: APIClient
) -> None:
    finished = []
    for doc in (OK, FAILS):
        version = publish(doc)
        execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
        finished.append(wait_finished(execution))
    version = publish(SLOW)
    slow, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    wait_until(lambda: StepRun.objects.filter(execution=slow, status="running").exists(), message="the nap to start")
    finished.append(execution_cancel(execution=slow))
    dry, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow, mode=ExecutionMode.DRY_RUN)

    assert [wait_finished(e).status for e in finished] == [
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
    ]
    receipts = [_signed(execution) for execution in finished]
    assert not Receipt.objects.filter(execution=dry).exists()  # a dry run ran nothing

    statement = verify_envelope(receipts[0].envelope, verification_keys())
    assert statement["predicateType"] == PREDICATE_TYPES[ReceiptKind.EXECUTION]
    predicate = statement["predicate"]
    assert predicate["execution"] == str(finished[0].pk) and predicate["status"] == "succeeded"
    assert [step["id"] for step in predicate["steps"]] == ["hello", "bye"]
    assert {d["pack"] for d in predicate["policy_decisions"]} == {"residency", "pii", "budget", "quotas"}
    assert all(d["revision"] for d in predicate["policy_decisions"])
    names = [s["name"] for s in statement["subject"]]
    assert names == ["workflow-snapshot", "step:hello/outputs", "step:bye/outputs"]
    outputs = {row.step_id: row.output_digest for row in StepRun.objects.filter(execution=finished[0])}
    assert statement["subject"][1]["digest"]["sha256"] == outputs["hello"]

    wait_until(lambda: not Receipt.objects.filter(tenant=tenant, signed_at__isnull=True).exists(), message="all signed")
    chain = list(Receipt.objects.filter(tenant=tenant).order_by("sequence"))
    assert [r.sequence for r in chain] == list(range(1, len(chain) + 1))  # 3 publishes and 3 runs, no gap
    assert all(later.previous_digest == earlier.digest for earlier, later in itertools.pairwise(chain))
    assert chain_verify(tenant).ok

    response = api.get(f"/api/receipts/{receipts[2].pk}/verify")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert [c["name"] for c in response.json()["checks"]] == ["signature", "digest", "chain", "database"]
    assert api.get("/api/receipts/chain/verify").json() == {"tenant": "acme", "ok": True, "receipts": 6, "problems": []}


# --- tampering, in-process ---------------------------------------------------------------------


def _run_finished(publish: Any, tenant: Any, runner_user: Any, name: str) -> Any:
    """A run recorded as finished without a worker: its steps marked succeeded with made-up digests."""
    from django.utils import timezone

    from receipts.services import execution_record_create

    version = publish(workflow_doc(name, [{"id": "only", "uses": "pkg:mc/echo@1", "with": {"message": "x"}}]))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    StepRun.objects.filter(execution=execution).update(
        status="succeeded", output_digest="ab" * 32, input_digest="cd" * 32
    )
    execution.status, execution.finished_at = ExecutionStatus.SUCCEEDED, timezone.now()
    execution.save(update_fields=["status", "finished_at"])
    return execution_record_create(execution)


@pytest.fixture
def chain(publish: Any, tenant: Any, runner_user: Any) -> list[Receipt]:
    """Three runs' receipts (after their publishes'), all signed: a chain of six."""
    for index in range(3):
        _run_finished(publish, tenant, runner_user, f"tamper-{index}")
    for receipt in Receipt.objects.filter(tenant=tenant).order_by("created_at"):
        receipt_sign(receipt.pk)
    return list(Receipt.objects.filter(tenant=tenant).order_by("sequence"))


@pytest.mark.django_db
def test_an_untouched_chain_verifies(chain: list[Receipt], tenant: Any) -> None:
    assert [r.sequence for r in chain] == [1, 2, 3, 4, 5, 6]
    assert all(receipt_verify(r).ok for r in chain)
    assert chain_verify(tenant).ok


@pytest.mark.django_db
def test_a_flipped_payload_byte_is_caught_by_the_signature(chain: list[Receipt]) -> None:
    receipt = chain[3]
    payload = bytearray(base64.b64decode(receipt.envelope["payload"]))
    payload[40] ^= 0x01
    receipt.envelope = {**receipt.envelope, "payload": base64.b64encode(bytes(payload)).decode()}
    check = receipt_verify(receipt).checks[0]
    assert (check.name, check.ok) == ("signature", False)
    assert "signature" in check.message


@pytest.mark.django_db
def test_a_signature_swapped_from_another_receipt_is_caught(chain: list[Receipt]) -> None:
    receipt, other = chain[3], chain[4]
    receipt.envelope = {**receipt.envelope, "signatures": other.envelope["signatures"]}
    check = receipt_verify(receipt).checks[0]
    assert (check.name, check.ok) == ("signature", False)


@pytest.mark.django_db
def test_an_edited_step_row_is_caught_by_the_database_check(chain: list[Receipt]) -> None:
    receipt = chain[5]
    StepRun.objects.filter(execution_id=receipt.execution_id).update(output_digest="ef" * 32)
    checks = {check.name: check for check in receipt_verify(receipt).checks}
    assert checks["signature"].ok and not checks["database"].ok
    assert "/subject/1/digest/sha256" in checks["database"].message
    assert "/predicate/steps/0/output_digest" in checks["database"].message


@pytest.mark.django_db
def test_a_deleted_middle_receipt_is_reported_where_the_chain_breaks(chain: list[Receipt], tenant: Any) -> None:
    Receipt.objects.filter(pk=chain[2].pk).delete()
    verdict = chain_verify(tenant)
    assert not verdict.ok
    assert verdict.problems == [f"receipt #3 to #3 missing before {chain[3].pk}"]
    chain_check = next(c for c in receipt_verify(chain[3]).checks if c.name == "chain")
    assert not chain_check.ok and "receipt #3, its predecessor, is missing" in chain_check.message


@pytest.mark.django_db
def test_reordered_receipts_break_the_links(chain: list[Receipt], tenant: Any) -> None:
    third, fourth = chain[2], chain[3]
    Receipt.objects.filter(pk=third.pk).update(sequence=None)
    Receipt.objects.filter(pk=fourth.pk).update(sequence=3)
    Receipt.objects.filter(pk=third.pk).update(sequence=4)
    problems = chain_verify(tenant).problems
    assert any(p.startswith("receipt #3 ") and "names" in p for p in problems), problems
    assert any("chain" not in p and "signed sequence" not in p for p in problems)


@pytest.mark.django_db
def test_a_receipt_signed_with_an_unknown_key_is_refused(chain: list[Receipt]) -> None:
    from receipts.signing.dsse import KeySigner, sign_statement
    from receipts.signing.keys import generate_private_key

    receipt = chain[1]
    statement = json.loads(base64.b64decode(receipt.envelope["payload"]))
    receipt.envelope = sign_statement(statement, KeySigner(generate_private_key())).envelope
    check = receipt_verify(receipt).checks[0]
    assert (check.name, check.ok) == ("signature", False)
    assert "unknown" in check.message or "key" in check.message


@pytest.mark.django_db
def test_an_inserted_receipt_breaks_the_link_after_it(chain: list[Receipt], tenant: Any) -> None:
    """A receipt slipped into the middle, even one signed with MC's own key, leaves its successor's link dangling."""
    for receipt in reversed(chain[3:]):
        Receipt.objects.filter(pk=receipt.pk).update(sequence=(receipt.sequence or 0) + 1)
    forged = Receipt.objects.create(
        tenant=tenant, kind=ReceiptKind.PUBLISH, subject_digest="sha256:" + "0" * 64, record={"kind": "publish"}
    )
    Receipt.objects.filter(pk=forged.pk).update(sequence=4, previous_digest=chain[2].digest)
    problems = chain_verify(tenant).problems
    assert any(p.startswith(f"receipt #5 ({chain[3].pk}) names {chain[3].previous_digest}") for p in problems), problems


@pytest.mark.django_db
def test_the_admin_verifies_selected_receipts(chain: list[Receipt], admin_client: Any) -> None:
    StepRun.objects.filter(execution_id=chain[5].execution_id).update(output_digest="ef" * 32)
    response = admin_client.post(
        "/admin/receipts/receipt/",
        {"action": "verify", "_selected_action": [str(chain[4].pk), str(chain[5].pk)]},
        follow=True,
    )
    texts = [str(message) for message in response.context["messages"]]
    assert f"receipt #5 {chain[4].pk}: verified" in texts
    assert any(t.startswith(f"receipt #6 {chain[5].pk}: database: changed since signing") for t in texts), texts
