"""pkg:mc/http@1 against a real HTTP server on 127.0.0.1: allow-list, statuses, caps, timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from executions.packages import InputInvalid, PackageSettings, StepContext, StepFailed
from executions.packages.builtin_http import HTTP_BODY_LIMIT, HttpPackage, host_allowed


class Handler(BaseHTTPRequestHandler):
    """Routes by path: /ok, /big, /status/<n>, /echo, /slow, /redirect, /latin1."""

    requests: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Secret-Header", "not copied")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        Handler.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else ""
        if self.path == "/ok":
            self._reply(200, b'{"ok": true}')
        elif self.path == "/big":
            self._reply(200, b"x" * (HTTP_BODY_LIMIT * 3), "text/plain")
        elif self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
            self._reply(status, f"status {status} body".encode(), "text/plain")
        elif self.path.startswith("/echo"):
            seen = {
                "method": self.command,
                "path": self.path,
                "body": received,
                "content_type": self.headers.get("Content-Type"),
                "x_token": self.headers.get("X-Token"),
                "authorization": self.headers.get("Authorization"),
            }
            self._reply(200, json.dumps(seen).encode())
        elif self.path == "/slow":
            time.sleep(3)
            self._reply(200, b"late")
        elif self.path == "/redirect":
            self._reply(302, b"", "text/plain", Location="https://elsewhere.example.net/")
        elif self.path == "/latin1":
            self._reply(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
        else:
            self._reply(404, b"no such route", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


ALLOW_LOCAL = PackageSettings(http_allowed_hosts=("127.0.0.1",))


def run(with_: dict[str, Any], *, settings: PackageSettings = ALLOW_LOCAL, timeout: int = 30) -> dict[str, Any]:
    ctx = StepContext(
        execution_id="e-1",
        step_id="call",
        attempt=1,
        resource_class="small",
        timeout_seconds=timeout,
        log=lambda line: None,
        artifacts=None,  # type: ignore[arg-type]  # mc/http stores nothing
        settings=settings,
    )
    return HttpPackage().run(ctx, with_)


def test_get_from_an_allowed_host(server: str) -> None:
    outputs = run({"url": f"{server}/ok"})

    assert outputs == {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": '{"ok": true}',
        "truncated": False,
    }


def test_a_host_not_allowed_is_refused_before_any_request(server: str) -> None:
    Handler.requests.clear()

    with pytest.raises(InputInvalid) as caught:
        run({"url": f"{server}/ok"}, settings=PackageSettings(http_allowed_hosts=("example.com", "*.example.org")))

    assert "'127.0.0.1' is not allowed" in caught.value.message
    assert "MC_HTTP_ALLOWED_HOSTS" in caught.value.message
    assert caught.value.retryable is False
    assert Handler.requests == []


def test_by_default_no_host_is_allowed(server: str) -> None:
    with pytest.raises(InputInvalid, match="allowed: none"):
        run({"url": f"{server}/ok"}, settings=PackageSettings())


def test_a_server_error_is_a_retryable_failure(server: str) -> None:
    with pytest.raises(StepFailed) as caught:
        run({"url": f"{server}/status/503"})

    assert caught.value.retryable is True
    assert "returned HTTP 503: status 503 body" in caught.value.message


def test_a_client_error_is_not_retryable(server: str) -> None:
    with pytest.raises(StepFailed) as caught:
        run({"url": f"{server}/missing"})

    assert caught.value.retryable is False
    assert not isinstance(caught.value, InputInvalid)
    assert "returned HTTP 404" in caught.value.message


@pytest.mark.parametrize("status", [408, 429])
def test_try_again_later_statuses_are_retryable(server: str, status: int) -> None:
    with pytest.raises(StepFailed) as caught:
        run({"url": f"{server}/status/{status}"})

    assert caught.value.retryable is True


def test_a_large_body_is_cut_to_64_kib_and_flagged(server: str) -> None:
    outputs = run({"url": f"{server}/big"})

    assert len(outputs["body"]) == HTTP_BODY_LIMIT == 64 * 1024
    assert outputs["truncated"] is True


def test_the_body_is_decoded_with_the_response_charset(server: str) -> None:
    assert run({"url": f"{server}/latin1"})["body"] == "café"


def test_post_json_with_headers(server: str) -> None:
    outputs = run({"url": f"{server}/echo?q=1", "method": "POST", "headers": {"X-Token": "t0k"}, "json": {"n": [1, 2]}})

    seen = json.loads(outputs["body"])
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo?q=1"
    assert json.loads(seen["body"]) == {"n": [1, 2]}
    assert seen["content_type"] == "application/json"
    assert seen["x_token"] == "t0k"


def test_put_with_a_text_body(server: str) -> None:
    seen = json.loads(run({"url": f"{server}/echo", "method": "PUT", "body": "plain text"})["body"])

    assert (seen["method"], seen["body"]) == ("PUT", "plain text")


def test_proxy_settings_of_the_worker_are_not_used(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there

    assert run({"url": f"{server}/ok"})["status"] == 200


def test_redirects_are_not_followed(server: str) -> None:
    outputs = run({"url": f"{server}/redirect"})

    assert outputs["status"] == 302


def test_a_slow_server_times_out_retryably(server: str) -> None:
    started = time.monotonic()

    with pytest.raises(StepFailed, match=r"timed out after 0\.5 s") as caught:
        run({"url": f"{server}/slow", "timeout_seconds": 0.5})

    assert caught.value.retryable is True
    assert time.monotonic() - started < 2.5


def test_a_refused_connection_is_retryable() -> None:
    with pytest.raises(StepFailed) as caught:
        run({"url": "http://127.0.0.1:9/"})  # the discard port: nothing listens

    assert caught.value.retryable is True
    assert not isinstance(caught.value, InputInvalid)


@pytest.mark.parametrize(
    ("with_", "path"),
    [
        ({"url": "ftp://127.0.0.1/file"}, "/url"),
        ({"url": "file:///etc/passwd"}, "/url"),
        ({"url": "http://127.0.0.1/", "method": "BREW"}, "/method"),
        ({"url": "http://127.0.0.1/", "headers": {"X-N": 1}}, "/headers/X-N"),
        ({"url": "http://127.0.0.1/", "body": "a", "json": {}}, "/json"),
        ({"url": "http://127.0.0.1/", "timeout_seconds": 0}, "/timeout_seconds"),
        ({}, ""),
    ],
)
def test_bad_input_is_reported_at_its_path(with_: dict[str, Any], path: str) -> None:
    assert path in [p.path for p in HttpPackage().check_input(with_)]
    with pytest.raises(InputInvalid):
        run(with_)


def test_a_url_without_a_host_is_invalid() -> None:
    with pytest.raises(InputInvalid, match="has no host"):
        run({"url": "http:///path"})


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("api.example.com", ("api.example.com",), True),
        ("API.Example.COM", ("api.example.com",), True),
        ("api.example.com.", ("api.example.com",), True),
        ("api.example.com", ("example.com",), False),
        ("a.b.example.com", ("*.example.com",), True),
        ("example.com", ("*.example.com",), False),
        ("evilexample.com", ("*.example.com",), False),
        ("example.com.evil.net", ("example.com", "*.example.com"), False),
        ("anything", (), False),
        ("anything", ("",), False),
    ],
)
def test_host_patterns(host: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert host_allowed(host, patterns) is allowed
