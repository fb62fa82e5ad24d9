"""The run page and its JSON, server-side: read-only, every panel there, state for polling."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from executions.console import log_by_attempt, run_state, seconds_ms, usd
from executions.models import Execution
from executions.tests.console_runs import FAILED_MESSAGE, big_run, finished_run, running_run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(tenant: Any) -> Any:
    return UserFactory(membership__tenant=tenant, membership__role="admin")


@pytest.fixture
def operator(tenant: Any) -> Client:
    staff = UserFactory(membership__tenant=tenant, membership__role="operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def page(client: Client, execution: Execution, suffix: str = "change/") -> str:
    response = client.get(f"/admin/executions/execution/{execution.pk}/{suffix}")
    assert response.status_code == 200, response.content[:400]
    return response.content.decode()


def test_costs_and_durations_read_as_people_write_them() -> None:
    assert usd(0.001040000000000001) == "$0.0010"
    assert usd(12.5) == "$12.50" and usd(0) == "$0" and usd(0.00001) == "<$0.0001" and usd(None) == "-"
    assert seconds_ms(0.0123) == "12 ms" and seconds_ms(1.2345) == "1.234 s" and seconds_ms(123.1) == "2 m 03.100 s"


def test_log_is_split_per_attempt() -> None:
    log = "--- attempt 1 on w1 ---\na\nb\n--- attempt 2 on w2 ---\nc"
    assert log_by_attempt(log) == {1: "a\nb", 2: "c"}


def test_finished_run_page_has_every_panel_and_no_save_button(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    html = page(operator, execution)
    for needle in (
        'id="mc-graph"',
        'id="mc-timeline"',
        'id="mc-state"',
        "executions/vendor/dagre/dagre.min.js",
        FAILED_MESSAGE,
        "step_failed",
        "log of attempt 1",
        "ERROR step_failed",
        "Plan",
        "planned steps",
        "verified now",
        ">verified<",
        "disclosure.tgz",
        "Policy decisions",
        "Verify receipt",
    ):
        assert needle in html, needle
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert '<b class="mc-cost">$' in html or '<b class="mc-cost"><$' in html or "&lt;$0.0001" in html


def test_state_json_has_graph_timeline_and_critical_path(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    state = operator.get(f"/admin/executions/execution/{execution.pk}/state.json").json()
    assert state["terminal"] is True and state["status"] == "failed"
    nodes = {node["key"]: node for node in state["graph"]["nodes"]}
    assert nodes["boom"]["status"] == "failed" and nodes["flaky"]["attempts"] == 2
    assert nodes["fanout"]["shards"] == {"total": 3, "by_status": {"succeeded": 3}}
    assert {"from": "fetch", "to": "boom"} in state["graph"]["edges"]
    rows = {row["key"]: row for row in state["timeline"]["rows"]}
    kinds = [segment["kind"] for segment in rows["flaky"]["segments"]]
    assert kinds == ["queued", "running", "backoff", "running"], kinds
    assert rows["flaky"]["segments"][1]["outcome"] == "failed"
    assert rows["flaky"]["estimate_ms"] is not None
    assert state["timeline"]["critical_path"][0] == "fetch"
    assert state["counts"]["failed"] == 1 and state["counts"]["skipped"] == 1
    cells = {cell["key"]: cell for cell in state["steps"]}
    assert set(cells) == set(nodes)
    assert cells["flaky"]["status"] == "succeeded" and cells["flaky"]["attempts"] == "2/3"
    assert cells["boom"]["error_code"] == "step_failed" and cells["boom"]["error"] == FAILED_MESSAGE
    assert cells["boom"]["duration"] == "376 ms" and cells["report"]["duration"] == "-"


def test_running_run_is_polled(operator: Client, tenant: Any, user: Any) -> None:
    execution = running_run(tenant, user)
    html = page(operator, execution)
    assert 'data-terminal="false"' in html and "refreshing every" in html and ">Cancel<" in html
    state = run_state(execution)
    rows = {row["key"]: row for row in state["timeline"]["rows"]}
    assert [s["kind"] for s in rows["flaky"]["segments"]][-2:] == ["backoff", "running"]


def test_thousand_step_run_is_collapsed_by_stage(operator: Client, tenant: Any, user: Any) -> None:
    execution = big_run(tenant, user)
    state = operator.get(f"/admin/executions/execution/{execution.pk}/state.json").json()
    graph = state["graph"]
    assert len(graph["nodes"]) == 1000 and graph["collapsed"] is True
    assert len(graph["bands"]) == 20 and sum(band["steps"] for band in graph["bands"]) == 1000
    assert graph["bands"][1]["needs"] == ["band-0"]
    assert len(state["timeline"]["rows"]) == 1000
    assert len(state["steps"]) == 200  # the table's rows only (the graph and the timeline have all)
    page(operator, execution)


def test_actions_cancel_retry_verify_from_the_run_page(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    verified = operator.post(f"/admin/executions/execution/{execution.pk}/verify/", follow=True)
    assert "Receipt verified: signature ok" in verified.content.decode()
    retried = operator.post(f"/admin/executions/execution/{execution.pk}/retry/", follow=True)
    assert retried.status_code == 200 and Execution.objects.count() == 2
    assert operator.get(f"/admin/executions/execution/{execution.pk}/fields/").status_code == 200
    assert operator.get(f"/admin/executions/execution/{execution.pk}/disclosure.tgz").status_code == 200


def test_step_page_shows_attempts_and_logs(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    step = execution.steps.get(step_id="flaky", kind="step")
    html = operator.get(f"/admin/executions/steprun/{step.pk}/change/").content.decode()
    assert "log of attempt 1" in html and "log of attempt 2" in html and "blip" in html
    assert 'name="_save"' not in html


def test_engine_records_are_read_only_in_the_admin(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    receipt = execution.receipts.get()
    for url in (
        f"/admin/receipts/receipt/{receipt.pk}/change/",
        f"/admin/workflows/workflowversion/{execution.workflow_version_id}/change/",
    ):
        html = operator.get(url).content.decode()
        assert 'name="_save"' not in html, url
    assert operator.get("/admin/executions/execution/add/").status_code == 403


def test_index_opens_on_the_overview(operator: Client, tenant: Any, user: Any) -> None:
    finished_run(tenant, user)
    html = operator.get("/admin/").content.decode()
    assert 'id="mc-overview"' in html
    assert "Runs in the last 24 h: 1" in html and "nightly-report</a>: 1 of 1 failed" in html
    assert "Queue backlog" in html and "Active canaries" in html
    assert ">verified<" in html
    assert "Tenant policies" in html and "policys" not in html


def test_lists_show_badges_versions_durations_and_links(operator: Client, tenant: Any, user: Any) -> None:
    execution = finished_run(tenant, user)
    runs = operator.get("/admin/executions/execution/").content.decode()
    assert 'class="mc-badge mc-failed"' in runs and "nightly-report@1.0.0" in runs and "5/5" in runs
    workflows = operator.get("/admin/workflows/workflow/").content.decode()
    assert "1.0.0" in workflows and "mc-badge mc-failed" in workflows
    decisions = operator.get("/admin/policy/policydecision/")
    assert decisions.status_code == 200
    assert str(execution.pk)[:8] in decisions.content.decode() or "0 policy decisions" in decisions.content.decode()


def test_version_page_shows_yaml_dag_and_diff(operator: Client, tenant: Any, user: Any) -> None:
    from workflows.models import WorkflowVersion
    from workflows.services import draft_save, workflow_publish

    execution = finished_run(tenant, user)
    workflow = execution.workflow
    doc = dict(execution.workflow_version.manifest)
    doc["description"] = "now with a description"
    draft_save(workflow=workflow, actor=user, manifest=doc)
    new = workflow_publish(workflow=workflow, actor=user).version
    html = operator.get(f"/admin/workflows/workflowversion/{new.pk}/change/").content.decode()
    assert 'id="mc-version-graph"' in html and 'id="mc-version-state"' in html
    assert '<span class="k">tasks</span>' in html
    assert '<span class="add">+description: now with a description</span>' in html
    assert 'name="_save"' not in html
    first = WorkflowVersion.objects.get(workflow=workflow, version="1.0.0")
    assert "first version" in operator.get(f"/admin/workflows/workflowversion/{first.pk}/change/").content.decode()


def test_every_admin_list_and_page_opens(operator: Client, tenant: Any, user: Any) -> None:
    from django.contrib import admin
    from django.urls import reverse

    finished_run(tenant, user)
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        listing = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listing.status_code == 200, (opts.label, listing.status_code)
        first = model_admin.get_queryset(listing.wsgi_request).first()
        if first is not None:
            page = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
            assert page.status_code == 200, (opts.label, page.status_code)


def test_a_dry_run_has_a_page_too(operator: Client, tenant: Any, user: Any) -> None:
    from executions.services import execution_create
    from executions.tests.console_runs import MIXED, publish

    workflow = publish(tenant, user, MIXED)
    dry, _ = execution_create(tenant=tenant, actor=user, workflow=workflow, mode="dry_run")
    html = page(operator, dry)
    assert "a dry run has none" in html and 'data-terminal="true"' in html
    assert operator.get(f"/admin/executions/execution/{dry.pk}/state.json").json()["terminal"] is True


def test_timeline_shows_past_quota_waits_of_attempt_records(tenant: Any, user: Any) -> None:
    """An attempt record with ``quota_waited_ms`` gets a quota-wait bar of that length right before it runs."""
    execution = finished_run(tenant, user)
    flaky = execution.steps.get(step_id="flaky", kind="step")
    first, second = flaky.attempts
    flaky.attempts = [{**first, "quota_waited_ms": 1}, {**second, "quota_waited_ms": 150}]
    flaky.save(update_fields=["attempts"])
    rows = {row["key"]: row for row in run_state(execution)["timeline"]["rows"]}
    segments = rows["flaky"]["segments"]
    assert [s["kind"] for s in segments] == ["queued", "quota", "running", "backoff", "quota", "running"]
    queued, wait1, run1, backoff, wait2, run2 = segments
    assert wait1["end"] - wait1["start"] == 1 and queued["end"] == wait1["start"] and wait1["end"] == run1["start"]
    assert wait2["end"] - wait2["start"] == 150 and wait2["attempt"] == 2
    assert backoff["end"] == wait2["start"] and wait2["end"] == run2["start"]
    others = [s["kind"] for key, row in rows.items() if key != "flaky" for s in row["segments"]]
    assert "quota" not in others  # records without the field: no wait drawn
