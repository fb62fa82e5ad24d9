"""The CLI against servers that are not MC, or that answer in MC's error shape: one line of text."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import Result

PAGE = b"<!DOCTYPE html><html><body><h1>Page not found</h1>\n<p>Using the URLconf ...</p>\n</body></html>"
MC_ERROR = {
    "error": {
        "code": "ambiguous_id",
        "message": "37bd3058 names 2 executions.",
        "details": [
            {"path": "/id", "message": "37bd3058-0000-4000-8000-000000000001 hello@1.0.0 failed"},
        ],
    }
}


def _server(status: int, body: bytes, content_type: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def html_server() -> Iterator[str]:
    yield from _server(404, PAGE, "text/html; charset=utf-8")


@pytest.fixture
def other_json_server() -> Iterator[str]:
    yield from _server(404, b'{"detail": "Not found."}', "application/json")


@pytest.fixture
def mc_error_server() -> Iterator[str]:
    yield from _server(409, json.dumps(MC_ERROR).encode(), "application/json")


@pytest.mark.parametrize("server", ["html_server", "other_json_server"])
def test_an_answer_that_is_not_mc_is_exit_3_with_one_line(
    cli: Callable[..., Result], request: pytest.FixtureRequest, server: str
) -> None:
    url = request.getfixturevalue(server)
    result = cli("status", "37bd3058", env={"MAESTRO_URL": url, "MAESTRO_TOKEN": "mc_x"})
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "HTTP 404" in lines[0] and "not MC's API" in lines[0]
    assert "<" not in lines[0] and "{" not in lines[0]
    assert result.stdout == ""


def test_mc_errors_are_text_with_their_details(cli: Callable[..., Result], mc_error_server: str) -> None:
    result = cli("status", "37bd3058", env={"MAESTRO_URL": mc_error_server, "MAESTRO_TOKEN": "mc_x"})
    assert result.exit_code == 1
    assert "error: 37bd3058 names 2 executions. (HTTP 409) (ambiguous_id)" in result.stderr
    assert "/id: 37bd3058-0000-4000-8000-000000000001 hello@1.0.0 failed" in result.stderr
    assert "{" not in result.stderr


def test_json_output_keeps_the_error_shape(cli: Callable[..., Result], html_server: str) -> None:
    result = cli("status", "37bd3058", "--output", "json", env={"MAESTRO_URL": html_server, "MAESTRO_TOKEN": "x"})
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "bad_answer"
