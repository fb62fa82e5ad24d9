"""Operator screens: executions list with inline steps, and the cancel and retry actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from executions.choices import ExecutionStatus, StepStatus
from executions.models import Execution, StepRun
from executions.services import execution_create
from tests.factories import UserFactory, manifest
from workflows.services import workflow_create, workflow_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(tenant: Any) -> Client:
    user = UserFactory(membership__tenant=tenant, membership__role="operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def execution(tenant: Any) -> Execution:
    user = UserFactory(membership__tenant=tenant, membership__role="admin")
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest())
    workflow_publish(workflow=workflow, actor=user)
    return execution_create(tenant=tenant, actor=user, workflow=workflow)[0]


def test_changelist_and_detail_show_executions_with_their_steps(operator_client: Client, execution: Execution) -> None:
    listing = operator_client.get("/admin/executions/execution/")
    assert listing.status_code == 200 and str(execution.pk) in listing.content.decode()
    detail = operator_client.get(f"/admin/executions/execution/{execution.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    for step_id in ("fetch", "left", "right", "report"):
        assert step_id in page
    assert operator_client.get("/admin/executions/steprun/").status_code == 200


def test_cancel_action_cancels_through_the_service(operator_client: Client, execution: Execution) -> None:
    response = operator_client.post(
        "/admin/executions/execution/",
        {"action": "cancel", "_selected_action": [str(execution.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED
    assert set(StepRun.objects.filter(execution=execution).values_list("status", flat=True)) == {StepStatus.CANCELLED}
    again = operator_client.post(
        "/admin/executions/execution/", {"action": "cancel", "_selected_action": [str(execution.pk)]}, follow=True
    )
    assert "cannot be cancelled" in again.content.decode()


def test_retry_action_starts_a_new_execution_with_the_same_inputs(
    operator_client: Client, execution: Execution
) -> None:
    operator_client.post(
        "/admin/executions/execution/", {"action": "retry", "_selected_action": [str(execution.pk)]}, follow=True
    )
    new = Execution.objects.exclude(pk=execution.pk).get()
    assert new.workflow_version_id == execution.workflow_version_id and new.inputs == execution.inputs
    assert new.status == ExecutionStatus.RUNNING and new.steps.count() == 4
