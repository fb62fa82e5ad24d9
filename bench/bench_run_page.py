"""The operator console's run page of a 1,000-step run. Run: python -m bench.bench_run_page

Not a timed test: it measures and prints. Beside the run page (``/admin/executions/
execution/<id>/change/``) it times, in the same run and on the same execution, Django's
plain admin change view of the row with its steps inline (``.../fields/``), and the
JSON the page polls (``.../state.json``).

Set-up: drops and recreates the PostgreSQL database ``mc_bench_console`` (or the one
``MC_DATABASE_URL`` names), migrates it, creates a tenant and a staff user through the
services, publishes a 1,000-step workflow (20 layers of 50, two needs each) and makes a
finished run of it (``executions.tests.console_runs.big_run``: the rows the engine
writes). The broker is kombu's in-memory transport unless ``MC_BROKER_URL`` says
otherwise: nothing runs, nothing is sent anywhere.

1. server time: the Django test client, in process, ``--samples`` GETs of each page
   after 2 warm-up;
2. browser time (needs Debian's ``chromium`` and ``chromium-driver``): the server in a
   thread, a headless Chromium logged in through the admin login form; for the run page,
   navigation start to the graph drawn (``window.mcGraphDrawnAt``, set by console.js once
   the SVG is in the page); for the plain view, navigation start to ``load``.

Targets (issue 13): run page under 1 s server-side, under 2 s to a drawn graph.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "mc_bench_console"
SERVER_TARGET_MS = 1000.0
BROWSER_TARGET_MS = 2000.0
PASSWORD = "bench-console"  # noqa: S105 - a throwaway user of a throwaway database


def _environment() -> None:
    os.environ.setdefault("MC_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
    os.environ.setdefault("MC_BROKER_URL", "memory://")
    os.environ.setdefault("MC_RESULT_BACKEND", "cache+memory://")
    os.environ.setdefault("MC_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mc_project.settings")


def _fresh_database() -> None:
    import psycopg

    url = os.environ["MC_DATABASE_URL"]
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _setup(steps: int) -> tuple[Any, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from executions.tests.console_runs import big_run
    from mc_project.tenancy.services import tenant_create, user_create

    tenant = tenant_create(slug="bench")
    user = user_create(username="operator", tenant=tenant, role="operator", password=PASSWORD, staff=True)
    started = time.perf_counter()
    execution = big_run(tenant, user, steps)
    print(f"made a finished {steps}-step run in {time.perf_counter() - started:.1f} s")
    return user, execution


def _server_times(user: Any, execution: Any, samples: int) -> dict[str, Any]:
    from django.test import Client

    from bench import harness

    client = Client()
    client.force_login(user)
    base = f"/admin/executions/execution/{execution.pk}/"
    results = {}
    for name, path in (("run page", "change/"), ("plain admin change view", "fields/"), ("state.json", "state.json")):

        def get(path: str = path) -> None:
            response = client.get(base + path)
            assert response.status_code == 200, response.status_code
            if hasattr(response, "render"):
                response.render()

        results[name] = harness.run(f"server: {name}", get, repeat=samples, warmup=2)
        size = len(client.get(base + path).content)
        print(f"  {name}: {size / 1024:.0f} KiB")
    return results


def _serve() -> tuple[str, Any]:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def _browser_times(user: Any, execution: Any, samples: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from bench import harness
    from tests.browser.chromium import chromium_driver, js_errors

    url, server = _serve()
    driver = chromium_driver()
    try:
        driver.get(f"{url}/admin/login/?next=/admin/")
        driver.find_element(By.NAME, "username").send_keys(user.username)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(driver, 20).until(lambda d: "/login/" not in d.current_url)
        base = f"{url}/admin/executions/execution/{execution.pk}/"
        drawn, plain = [], []
        for index in range(samples + 1):
            driver.get(base + "change/")
            WebDriverWait(driver, 60, poll_frequency=0.02).until(
                lambda d: d.execute_script("return window.mcGraphDrawnAt || 0")
            )
            if index:  # the first load warms the static files cache
                drawn.append(float(driver.execute_script("return window.mcGraphDrawnAt")))
            driver.get(base + "fields/")
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
            if index:
                plain.append(
                    float(
                        driver.execute_script(
                            "var t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd || t.duration"
                        )
                    )
                )
        errors = js_errors(driver)
        if errors:
            print("JavaScript errors:", errors)
    finally:
        driver.quit()
        server.shutdown()
    return {
        "run page": harness.summarize("browser: run page, to a drawn graph", drawn),
        "plain admin change view": harness.summarize("browser: plain admin change view, to load", plain),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true", help="server time only")
    args = parser.parse_args(argv)
    _environment()
    _fresh_database()
    user, execution = _setup(args.steps)

    from bench import harness

    server = _server_times(user, execution, args.samples)
    browser = {} if args.no_browser else _browser_times(user, execution, max(3, args.samples // 2))
    rows = [*server.values(), *browser.values()]
    harness.print_table(rows)
    run_page_server = server["run page"].p50
    plain_server = server["plain admin change view"].p50
    print(f"run page / plain change view (server p50): {run_page_server / plain_server:.2f}x")
    verdicts = {"server p50 < 1 s": run_page_server < SERVER_TARGET_MS}
    if browser:
        drawn = browser["run page"].p50
        print(
            f"run page drawn / plain view loaded (browser p50): {drawn / browser['plain admin change view'].p50:.2f}x"
        )
        verdicts["browser p50 to a drawn graph < 2 s"] = drawn < BROWSER_TARGET_MS
    for name, met in verdicts.items():
        print(f"{'met' if met else 'MISSED'}: {name}")
    path = harness.write_json(
        "bench_run_page",
        {
            "steps": args.steps,
            "results": [result.as_dict() for result in rows],
            "targets": verdicts,
            "environment": harness.environment(),
        },
    )
    print(f"wrote {path}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
