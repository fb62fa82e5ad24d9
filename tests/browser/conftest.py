"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium,
logged in to the admin; every page it opens must log no JavaScript error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.browser.chromium import CHROMEDRIVER, CHROMIUM, chromium_driver, js_errors

PASSWORD = "console-browser-test"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: "
            "run `bash .ci/services` (or `apt-get install chromium chromium-driver`)"
        )
    driver = chromium_driver()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots() -> Path:
    """Where the browser tests leave a screenshot of each page (a CI artifact under var/)."""
    path = Path(settings.VAR_DIR) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def admin_browser(browser: Any, live_server: Any, tenant: Any) -> Iterator[Callable[[str], Any]]:
    """``open(path)``: the page at ``path`` in a browser logged in to the admin through its login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.factories import UserFactory

    user = UserFactory(membership__tenant=tenant, membership__role="operator", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30).until(expected_conditions.url_to_be(f"{live_server.url}/admin/"))
    js_errors(browser)

    def open_page(path: str) -> Any:
        browser.get(f"{live_server.url}{path}")
        return browser

    yield open_page
    errors = js_errors(browser)
    assert not errors, f"the page logged JavaScript errors: {errors}"
