"""The run page in a real browser: the graph's nodes and colours, the timeline's bars, the
failed attempt's error, the receipt's verification, live updates, and a 1,000-step run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from executions.choices import ExecutionStatus, StepStatus
from executions.console import STATUS_COLOURS, seconds_ms
from executions.models import Execution, StepRun
from executions.tests.console_runs import FAILED_MESSAGE, big_run, finished_run, pending_receipt, running_run
from receipts.services import receipt_sign
from tests.browser.chromium import js_errors
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def user(tenant: Any) -> Any:
    return UserFactory(membership__tenant=tenant, membership__role="admin")


def wait_for(driver: Any, script: str, timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))
    except Exception as exc:
        raise AssertionError(f"{script} never true; page logged: {js_errors(driver)}") from exc


def nodes(driver: Any, graph: str = "#mc-graph") -> dict[str, dict[str, str]]:
    return driver.execute_script(
        "var out = {}; document.querySelectorAll(arguments[0] + ' g.mc-node').forEach(function (g) {"
        " out[g.getAttribute('data-key')] = {status: g.getAttribute('data-status'),"
        " fill: g.querySelector('rect').getAttribute('fill'), cls: g.getAttribute('class')}; }); return out;",
        graph,
    )


def test_finished_run_with_a_failed_and_a_retried_step(
    admin_browser: Callable[[str], Any], tenant: Any, user: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    execution = finished_run(tenant, user)
    driver = admin_browser(f"/admin/executions/execution/{execution.pk}/change/")
    wait_for(driver, "return document.body.getAttribute('data-graph') === 'drawn'")
    drawn = nodes(driver)
    assert set(drawn) == {"fetch", "flaky", "boom", "fanout", "report"}
    assert drawn["boom"]["status"] == "failed" and drawn["boom"]["fill"] == STATUS_COLOURS[StepStatus.FAILED]
    assert drawn["fetch"]["fill"] == STATUS_COLOURS[StepStatus.SUCCEEDED]
    assert drawn["report"]["fill"] == STATUS_COLOURS[StepStatus.SKIPPED]
    assert "mc-crit" in drawn["fetch"]["cls"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#mc-graph polyline.mc-edge")) == 6
    assert len(driver.find_elements(By.CSS_SELECTOR, "#mc-graph g[data-key=fanout] .mc-bar-part")) == 1
    legend = driver.find_element(By.ID, "mc-legend").text
    for status in ("pending", "queued", "running", "retrying", "succeeded", "failed", "skipped", "cancelled"):
        assert status in legend

    rows = driver.find_elements(By.CSS_SELECTOR, "#mc-timeline g.mc-row")
    assert len(rows) == 5
    flaky = driver.find_element(By.CSS_SELECTOR, "#mc-timeline g.mc-row[data-key=flaky]")
    assert len(flaky.find_elements(By.CSS_SELECTOR, "rect.mc-bar-running")) == 2
    assert len(flaky.find_elements(By.CSS_SELECTOR, "rect.mc-outcome-failed")) == 1
    assert len(flaky.find_elements(By.CSS_SELECTOR, "rect.mc-bar-backoff")) == 1
    assert flaky.find_elements(By.CSS_SELECTOR, "rect.mc-estimate")
    assert driver.find_elements(By.CSS_SELECTOR, "#mc-timeline g.mc-crit-row")

    boom = driver.find_element(By.XPATH, "//details[.//summary//b[text()='boom']]")
    boom.find_element(By.TAG_NAME, "summary").click()
    error_cell = boom.find_element(By.CSS_SELECTOR, "td.mc-attempt-error")
    assert error_cell.text == FAILED_MESSAGE
    assert "ERROR step_failed: " + FAILED_MESSAGE in boom.find_element(By.CSS_SELECTOR, "pre.mc-log").text

    assert driver.find_element(By.ID, "mc-verified").text == "verified"
    checks = driver.find_element(By.ID, "mc-checks").text
    assert "signature ok" in checks and "database ok" in checks
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(screenshots / "run-finished.png"))


def step_cells(driver: Any, key: str) -> dict[str, str]:
    """The steps table's cells of step ``key`` as the page shows them now."""
    return driver.execute_script(
        "var row = document.querySelector('#mc-steps tr[data-key=\"' + arguments[0] + '\"]'); var out = {};"
        " ['status', 'attempts', 'started', 'finished', 'duration', 'error'].forEach(function (name) {"
        " out[name] = row.querySelector('.mc-step-' + name).textContent.trim(); }); return out;",
        key,
    )


def test_running_run_refreshes_itself(
    admin_browser: Callable[[str], Any], tenant: Any, user: Any, screenshots: Path, settings: Any
) -> None:
    from selenium.webdriver.common.by import By

    settings.MC_CONSOLE_POLL_MS = 250
    execution = running_run(tenant, user)
    driver = admin_browser(f"/admin/executions/execution/{execution.pk}/change/")
    wait_for(driver, "return document.body.getAttribute('data-graph') === 'drawn'")
    assert nodes(driver)["flaky"]["status"] == "running"
    assert nodes(driver)["flaky"]["fill"] == STATUS_COLOURS[StepStatus.RUNNING]
    flaky = step_cells(driver, "flaky")
    assert flaky["status"] == "running" and flaky["attempts"].startswith("2/") and flaky["finished"] == ""
    assert step_cells(driver, "boom")["status"] == "queued"
    assert "No receipt yet" in driver.find_element(By.ID, "mc-receipt").text
    driver.execute_script("document.getElementById('mc-status').setAttribute('data-marker', 'same-page')")

    row = StepRun.objects.get(execution=execution, step_id="flaky", kind="step")
    ended = timezone.now()
    row.status, row.finished_at = StepStatus.SUCCEEDED, ended
    row.attempts = [
        *row.attempts,
        {"attempt": 2, "started_at": row.attempt_started_at.isoformat(), "outcome": "succeeded"},
    ]
    row.save(update_fields=["status", "finished_at", "attempts"])
    StepRun.objects.filter(execution=execution, step_id="boom").update(
        status=StepStatus.RUNNING, attempt=1, started_at=ended, attempt_started_at=ended
    )
    wait_for(
        driver,
        "var g = document.querySelector('#mc-graph g[data-key=flaky]');"
        " return g && g.getAttribute('data-status') === 'succeeded'",
    )
    assert nodes(driver)["boom"]["fill"] == STATUS_COLOURS[StepStatus.RUNNING]
    wait_for(
        driver,
        "return document.querySelector('#mc-steps tr[data-key=flaky]').getAttribute('data-status') === 'succeeded'",
    )
    flaky = step_cells(driver, "flaky")
    assert flaky["status"] == "succeeded" and flaky["attempts"] == f"{row.attempt}/{row.max_attempts}"
    assert flaky["finished"] == timezone.localtime(ended).strftime("%H:%M:%S.%f")[:-3]
    assert flaky["duration"] == seconds_ms(round((ended - row.started_at).total_seconds() * 1000) / 1000)
    boom = step_cells(driver, "boom")
    assert boom["status"] == "running" and boom["attempts"].startswith("1/") and boom["started"]

    # The run ends: its receipt is written pending, and the receipts worker signs it a moment later.
    with transaction.atomic():  # as the engine does: one transaction, or the page would see a run without one
        Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.SUCCEEDED, finished_at=timezone.now())
        execution.refresh_from_db()
        receipt = pending_receipt(execution)
    wait_for(driver, "var s = document.getElementById('mc-receipt-status'); return s && s.textContent === 'pending'")
    assert driver.find_element(By.ID, "mc-verified").text == "does not verify"
    assert receipt_sign(receipt.pk) is not None
    wait_for(driver, "var s = document.getElementById('mc-receipt-status'); return s && s.textContent === 'signed'")
    assert driver.find_element(By.ID, "mc-verified").text == "verified"
    checks = driver.find_element(By.ID, "mc-checks").text
    assert "signature ok" in checks and "database ok" in checks
    assert driver.find_element(By.ID, "mc-status").text == "succeeded"
    assert (
        driver.execute_script("return document.getElementById('mc-status').getAttribute('data-marker')") == "same-page"
    )
    driver.save_screenshot(str(screenshots / "run-running.png"))


def test_thousand_step_run(admin_browser: Callable[[str], Any], tenant: Any, user: Any, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    execution = big_run(tenant, user)
    started = time.perf_counter()
    driver = admin_browser(f"/admin/executions/execution/{execution.pk}/change/")
    wait_for(driver, "return document.body.getAttribute('data-graph') === 'drawn'", timeout=30)
    drawn_s = time.perf_counter() - started
    svg = driver.find_element(By.CSS_SELECTOR, "#mc-graph svg.mc-dag")
    assert svg.get_attribute("data-collapsed") == "true"
    bands = driver.find_elements(By.CSS_SELECTOR, "#mc-graph g.mc-band-node")
    assert len(bands) == 20
    assert sum(int(band.get_attribute("data-steps")) for band in bands) == 1000
    assert driver.find_element(By.CSS_SELECTOR, "#mc-timeline svg").get_attribute("data-rows") == "1000"
    bands[3].click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#mc-band .mc-badge")) == 50
    driver.save_screenshot(str(screenshots / "run-1000-steps.png"))
    print(f"1,000-step run page: graph drawn {drawn_s:.2f} s after the request")
    assert not js_errors(driver)


def test_version_page_and_overview(
    admin_browser: Callable[[str], Any], tenant: Any, user: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    execution = finished_run(tenant, user)
    driver = admin_browser(f"/admin/workflows/workflowversion/{execution.workflow_version_id}/change/")
    wait_for(driver, "return document.body.getAttribute('data-graph') === 'drawn'")
    assert set(nodes(driver, "#mc-version-graph")) == {"fetch", "flaky", "boom", "fanout", "report"}
    assert "\u00d73" in driver.find_element(By.CSS_SELECTOR, "#mc-version-graph g[data-key=fanout]").text
    driver.save_screenshot(str(screenshots / "workflow-version.png"))
    admin_browser("/admin/")
    assert "nightly-report" in driver.find_element(By.ID, "mc-overview").text
    driver.save_screenshot(str(screenshots / "admin-overview.png"))
