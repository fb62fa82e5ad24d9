"""A dependency that is down: 503 ``service_unavailable`` with ``Retry-After`` for what needs it, 200 for the rest.

Real outages, no mocks: Redis is a ``redis-server`` this module starts on a port of its own
and stops; PostgreSQL is "down" for the test's own connection only, pointed at a closed
port (the shared server is never touched).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from mc_project.celery import app as celery_app
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from receipts.models import Receipt
from tests.asserts import assert_error
from tests.factories import manifest

REDIS_PORTS = range(56600, 56700)


def _free_port() -> int:
    for port in REDIS_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 56600-56699")


class RedisServer:
    """A throwaway ``redis-server`` without persistence, on its own port and directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def admin(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.ADMIN, tenant)


def assert_unavailable(response: Any, dependency: str) -> dict[str, Any]:
    error = assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"].isdigit() and int(response["Retry-After"]) > 0, response.headers
    assert dependency in error["message"], error
    return error


# --- Redis down -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_the_throttle_cache_down_reads_that_need_only_the_database_answer(
    redis_server: RedisServer, admin: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_server.url,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    with override_settings(CACHES={"default": cache}, MC_THROTTLE_USER="1000/min", MC_THROTTLE_ANON="1000/min"):
        assert admin.get("/api/workflows").status_code == 200
        import redis

        keys = redis.Redis.from_url(redis_server.url).keys("*throttle*")
        assert keys, "the throttle counts in this Redis"
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="mc_project.throttling"):
            for _ in range(3):
                for url in ("/api/workflows", "/api/executions", "/api/receipts", "/api/me"):
                    response = admin.get(url)
                    assert response.status_code == 200, (url, response.content[:300])
            anonymous = APIClient().get("/api/schemas/manifest.v1.json")
            assert anonymous.status_code == 200
        warnings = [r for r in caplog.records if r.name == "mc_project.throttling"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one warning, not one per request


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """MC's Celery app sends to ``url`` (fresh connection pools) until the block ends."""
    previous = celery_app.conf.broker_url

    def repoint(to: str) -> None:
        celery_app.conf.broker_url = to
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    repoint(url)
    try:
        yield
    finally:
        repoint(previous)


def test_readyz_answers_503_with_retry_after_while_the_broker_is_down(redis_server: RedisServer, db: Any) -> None:
    with broker_at(redis_server.url):
        assert Client().get("/readyz").status_code == 200
        redis_server.stop()
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in json.dumps(body) and str(redis_server.port) not in json.dumps(body)


class _SendApi(APIView):
    """A view that needs the broker right now: it sends a task to the Redis given in the query."""

    def get(self, request: Request) -> Response:
        with celery_app.connection_for_write(request.query_params["broker"]) as broker:
            celery_app.send_task("mc.test.nothing", connection=broker, retry=False)
        return Response({"sent": True})


urlpatterns = [path("send", _SendApi.as_view()), path("", include("mc_project.urls"))]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_an_api_view_that_needs_the_broker_answers_503_while_it_is_down(
    redis_server: RedisServer, admin: APIClient
) -> None:
    assert admin.get("/send", {"broker": redis_server.url}).status_code == 200
    redis_server.stop()
    response = admin.get("/send", {"broker": redis_server.url})
    error = assert_unavailable(response, "broker")
    assert str(redis_server.port) not in json.dumps(error)


@pytest.mark.django_db(transaction=True)
def test_a_publish_while_the_broker_is_down_answers_201_and_its_receipt_waits_for_the_beat(
    redis_server: RedisServer, make_client: Callable[..., APIClient], tenant: Tenant
) -> None:
    """The publish commits before its receipt's signing task is sent: a failed send is no error."""
    publisher = make_client(Role.PUBLISHER, tenant)
    created = publisher.post("/api/workflows", {"manifest": manifest(name="outage")}, format="json")
    assert created.status_code == 201, created.content
    redis_server.stop()
    with broker_at(redis_server.url):
        published = publisher.post(f"/api/workflows/{created.json()['id']}/publish", {}, format="json")
    assert published.status_code == 201, published.content
    receipt = Receipt.objects.get(pk=published.json()["receipt_id"])
    assert receipt.signed_at is None  # receipts_sign_pending (the beat) signs it once the broker is back


# --- PostgreSQL down -------------------------------------------------------------------------------


@pytest.fixture
def database_down() -> Iterator[Callable[[], None]]:
    """``cut()`` points this process's connection at a closed port; the test's end restores it."""
    port = connection.settings_dict["PORT"]

    def cut() -> None:
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            closed = spare.getsockname()[1]  # free, and nothing listens once this closes
        connection.close()
        connection.settings_dict["PORT"] = str(closed)

    yield cut
    connection.settings_dict["PORT"] = port
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_the_api_answers_503(
    admin: APIClient, database_down: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    assert admin.get("/api/workflows").status_code == 200
    database_down()
    with caplog.at_level(logging.WARNING, logger="mc_project.errors"):
        for url in ("/api/workflows", "/api/executions/00000000-0000-0000-0000-000000000000", "/api/me"):
            error = assert_unavailable(admin.get(url), "database")
            assert "5432" not in json.dumps(error) and "postgres" not in json.dumps(error)
        assert_unavailable(admin.post("/api/workflows", {"manifest": {}}, format="json"), "database")
    assert any("database unavailable" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_the_admin_answers_503(
    admin: APIClient, database_down: Callable[[], None], django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-123456")
    browser = Client()
    browser.force_login(staff)
    assert browser.get("/admin/").status_code == 200
    database_down()
    page = browser.get("/admin/", HTTP_ACCEPT="text/html")
    assert page.status_code == 503, page.content[:300]
    assert int(page["Retry-After"]) > 0
    assert page["Content-Type"].startswith("text/plain") and b"database" in page.content
    assert_unavailable(browser.get("/admin/workflows/workflow/", HTTP_ACCEPT="application/json"), "database")
