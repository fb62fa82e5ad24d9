"""Debian's headless Chromium under selenium, with the page's console errors readable (tests and bench)."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
)


def chromium_driver() -> Any:
    """A selenium driver of the installed chromium and chromedriver (selenium downloads nothing)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in _ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def js_errors(driver: Any) -> list[str]:
    """What the page logged as errors since the last call (console.error, uncaught exceptions, failed loads)."""
    entries = driver.get_log("browser")
    # The browser's own favicon request is no error of the page.
    return [e["message"] for e in entries if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
