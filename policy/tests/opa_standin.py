"""A stand-in OPA server for tests: the REST Data API (``POST /v1/data/<path>``) over regopy.

No opa binary exists here, so this evaluates loaded bundles in-process and answers in
OPA's shapes: ``{"result": ...}``, ``{}`` when the document is undefined, and
``{"code": "internal_error", "message": ...}`` with a 500 when evaluation fails. Honours
``?strict-builtin-errors=true``. Switches simulate failures::

    with OpaStandIn([bundle]) as opa:
        opa.mode = "error500"     # or "slow" (sleeps opa.delay_s), "undefined", "garbage", "ok"
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from policy.engine import Bundle, PolicyEvalError, rego

MODES = ("ok", "error500", "slow", "undefined", "garbage")


class _Pack:
    """One bundle's interpreter; a lock because an Interpreter is not thread-safe."""

    def __init__(self, bundle: Bundle) -> None:
        self.roots = list(bundle.roots)
        self.lock = threading.Lock()
        self.interp = rego.new_interpreter()
        for path, source in bundle.modules.items():
            self.interp.add_module(path, source)
        self.interp.add_data_json(json.dumps(bundle.data))

    def covers(self, path: str) -> bool:
        return any(not r or path == r or path.startswith(r + "/") for r in self.roots)

    def query(self, path: str, input: Any, strict: bool) -> Any:
        with self.lock:
            self.interp.strict_built_in_errors = strict
            rego.set_input(self.interp, {} if input is None else input)
            ref = "data" + "".join(f'["{part}"]' for part in path.split("/") if part)
            return rego.query_document(self.interp, ref)


class OpaStandIn:
    """Serve ``bundles`` on 127.0.0.1 with an ephemeral port; ``base_url`` to reach it."""

    def __init__(self, bundles: Sequence[Bundle]) -> None:
        self.packs = [_Pack(b) for b in bundles]
        self.mode = "ok"
        self.delay_s = 1.0
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="opa-standin", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> OpaStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever, so only when it runs
        self._server.server_close()

    def __enter__(self) -> OpaStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def answer(self, path: str, query: str, body: bytes) -> tuple[int, bytes]:
        """Status and body for ``POST /v1/data/<path>``, as OPA would send them."""
        params = parse_qs(query)
        self.requests.append({"path": path, "params": params})
        if self.mode == "error500":
            return 500, _json({"code": "internal_error", "message": "simulated failure"})
        if self.mode == "garbage":
            return 200, b"<html>not json</html>"
        if self.mode == "undefined":
            return 200, b"{}"
        if self.mode == "slow":
            time.sleep(self.delay_s)
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return 400, _json({"code": "invalid_parameter", "message": f"body is not JSON: {exc}"})
        pack = next((p for p in self.packs if p.covers(path)), None)
        if pack is None:
            return 200, b"{}"
        strict = params.get("strict-builtin-errors", ["false"])[0] == "true"
        try:
            result = pack.query(path, request.get("input"), strict)
        except PolicyEvalError as exc:
            return 500, _json({"code": "internal_error", "message": str(exc)})
        if result is rego.UNDEFINED:
            return 200, b"{}"
        return 200, _json({"result": result})


def _handler_for(standin: OpaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if not url.path.startswith("/v1/data"):
                self._send(404, _json({"code": "resource_not_found", "message": url.path}))
                return
            length = int(self.headers.get("Content-Length") or 0)
            path = url.path.removeprefix("/v1/data").strip("/")
            status, body = standin.answer(path, url.query, self.rfile.read(length))
            self._send(status, body)

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing left to tell it

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def _json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")
