"""pii never reaches a stored log: a pii step's inputs and outputs, and pii a later step receives."""

from __future__ import annotations

from typing import Any

import pytest

from executions.choices import ExecutionStatus
from executions.models import StepRun
from executions.services import execution_create
from executions.services.steplog import REDACTED, StepLog
from executions.tests.conftest import steps_by_id, wait_finished, workflow_doc
from tests.workers import WorkerProcess

EMAIL = "alice@example.com"

DOC = workflow_doc(
    "pii-logs",
    [
        {
            "id": "collect",
            "uses": "pkg:mc/shell@1",
            "with": {"argv": ["echo", "${{ inputs.email }}"]},
            "data_classes": ["pii"],
        },
        {
            "id": "notify",  # not pii itself, but it receives collect's output
            "uses": "pkg:mc/shell@1",
            "with": {"argv": ["echo", "sent to ${{ steps.collect.outputs.stdout }}"]},
            "needs": ["collect"],
        },
        {
            "id": "audit",
            "uses": "pkg:mc/fail@1",
            "with": {"message": "could not audit ${{ inputs.email }}"},
            "data_classes": ["pii"],
            "needs": ["notify"],
        },
    ],
    region="eu-west-1",
    pii_export_approved=True,
    inputs={"email": {"type": "string"}},
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pii_values_are_redacted_from_every_log_and_error(
    worker: WorkerProcess, publish: Any, tenant: Any, runner_user: Any
) -> None:
    version = publish(DOC)
    execution, _ = execution_create(
        tenant=tenant, actor=runner_user, workflow=version.workflow, inputs={"email": EMAIL}
    )
    execution = wait_finished(execution)
    assert execution.status == ExecutionStatus.FAILED
    steps = steps_by_id(execution)
    assert steps["collect"].outputs["stdout"].strip() == EMAIL  # the data itself is kept: only logs are redacted
    assert f"$ echo {REDACTED}" in steps["collect"].log
    assert f"sent to {REDACTED}" in steps["notify"].log
    assert steps["audit"].error["message"] == f"could not audit {REDACTED}"
    for step in StepRun.objects.filter(execution=execution):
        assert EMAIL not in step.log, step.step_id
        assert EMAIL not in str(step.error or ""), step.step_id
    assert steps["collect"].data_classes == ["pii"] and steps["notify"].data_classes == []


def test_redaction_replaces_longest_values_first_and_ignores_tiny_ones() -> None:
    log = StepLog(limit=1000)
    log.redact({"name": "Alice", "full": "Alice Smith", "id": 7, "ok": True, "tags": ["vip-customer"]})
    log.write("Alice Smith (vip-customer) is customer 7, Alice for short")
    assert log.text().split(" ", 1)[1] == f"{REDACTED} ({REDACTED}) is customer 7, {REDACTED} for short"


def test_only_what_expressions_put_in_a_pii_steps_inputs_is_redacted() -> None:
    log = StepLog(limit=1000)
    template = {"argv": ["send", "--to", "${{ inputs.email }}", "hello ${{ inputs.name }}!"], "n": 3}
    rendered = {"argv": ["send", "--to", EMAIL, "hello Alice Smith!"], "n": 3}
    log.redact_rendered(template, rendered)
    log.write("send --to alice@example.com hello Alice Smith!")
    assert log.text().split(" ", 1)[1] == f"send --to {REDACTED} hello {REDACTED}!"
