"""pkg:mc/http@1: one HTTP request to a host the operator allows."""

from __future__ import annotations

from typing import Any

import httpx

from workflows.manifest import Problem

from .base import InputInvalid, StepContext, StepFailed, TaskPackage, slot_costs

#: Bytes of the response body kept in the outputs; the rest is dropped (truncated: true).
HTTP_BODY_LIMIT = 64 * 1024
HTTP_DEFAULT_TIMEOUT = 30
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: 4xx statuses that mean "try again later" rather than "this request is wrong".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
#: Response headers copied to the outputs.
KEPT_HEADERS = ("content-type",)


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``patterns``: exact names, or ``*.example.com`` for any subdomain.

    Case and a trailing dot are ignored; ``*.example.com`` does not match example.com itself.
    """
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif pattern and host == pattern:
            return True
    return False


class HttpPackage(TaskPackage):
    namespace = "mc"
    name = "http"
    version = "1"
    description = (
        "Sends one HTTP(S) request to an allowed host (MC_HTTP_ALLOWED_HOSTS) and outputs the status, "
        "content type and the first 64 KiB of the body. 5xx, 408, 429 and network errors are retryable "
        "failures; other 4xx are not. Redirects are not followed."
    )
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "maxLength": 8192, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
            "method": {"enum": list(HTTP_METHODS), "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string", "description": "Raw request body (text)."},
            "json": {"description": "A JSON request body; sets Content-Type: application/json."},
            "timeout_seconds": {"type": "number", "minimum": 0.1, "maximum": 600, "default": HTTP_DEFAULT_TIMEOUT},
        },
    }
    output_keys = ("status", "headers", "body", "truncated")
    side_effects = True
    cost = slot_costs(0.5)
    example = """\
- id: ping
  uses: pkg:mc/http@1
  with:
    url: https://status.example.com/health
    method: GET
    headers:
      accept: application/json
    timeout_seconds: 10
  retries: 3
"""

    def check_input(self, with_: Any, *, allow_expressions: bool = False) -> list[Problem]:
        problems = super().check_input(with_, allow_expressions=allow_expressions)
        if isinstance(with_, dict) and "body" in with_ and "json" in with_:
            problems.append(Problem("/json", "give 'body' or 'json', not both"))
        return problems

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/http got invalid input", details=problems)
        url = _allowed_url(with_["url"], ctx.settings.http_allowed_hosts)
        method = with_.get("method", "GET")
        timeout = min(float(with_.get("timeout_seconds", HTTP_DEFAULT_TIMEOUT)), float(ctx.timeout_seconds))
        shown = _safe_url(url)
        try:
            status, headers, body, truncated = _send(method, url, with_, timeout)
        except httpx.TimeoutException as error:
            raise StepFailed(f"{method} {shown} timed out after {timeout:g} s") from error
        except httpx.TransportError as error:
            raise StepFailed(f"{method} {shown} failed: {error or type(error).__name__}") from error
        except (httpx.InvalidURL, UnicodeEncodeError) as error:
            raise InputInvalid(f"cannot send {method} {shown}: {error}") from error
        ctx.log(f"{method} {shown} -> {status} ({len(body)} characters{', truncated' if truncated else ''})")
        if status >= 400:
            retryable = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
            snippet = body[:200].strip()
            message = f"{method} {shown} returned HTTP {status}" + (f": {snippet}" if snippet else "")
            raise StepFailed(message, retryable=retryable)
        return {"status": status, "headers": headers, "body": body, "truncated": truncated}


def _allowed_url(raw: str, allowed_hosts: tuple[str, ...]) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as error:
        raise InputInvalid(f"invalid url {raw!r}: {error}") from error
    if url.scheme not in ("http", "https"):
        raise InputInvalid(f"url {raw!r} must start with http:// or https://")
    if not url.host:
        raise InputInvalid(f"url {raw!r} has no host")
    if not host_allowed(url.host, allowed_hosts):
        allowed = ", ".join(allowed_hosts) or "none"
        raise InputInvalid(
            f"host {url.host!r} is not allowed for mc/http (allowed: {allowed}); "
            f"an operator can add it to MC_HTTP_ALLOWED_HOSTS"
        )
    return url


def _safe_url(url: httpx.URL) -> str:
    """The URL for logs and messages: no credentials, no query string (tokens live there)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _send(method: str, url: httpx.URL, with_: dict[str, Any], timeout: float) -> tuple[int, dict[str, str], str, bool]:
    """Send the request; return status, kept headers, the body as text (capped) and whether it was cut."""
    body: dict[str, Any] = {}
    if "json" in with_:
        body["json"] = with_["json"]
    elif "body" in with_:
        body["content"] = with_["body"].encode("utf-8")
    # trust_env=False: no proxy settings (or other HTTP configuration) from the worker's environment.
    with (
        httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client,
        client.stream(method, url, headers=with_.get("headers"), **body) as response,
    ):
        data, truncated = _read_capped(response, HTTP_BODY_LIMIT)
        headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
        text = data.decode(response.encoding or "utf-8", errors="replace")
        return response.status_code, headers, text, truncated


def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    kept = bytearray()
    for chunk in response.iter_bytes():
        room = limit - len(kept)
        if len(chunk) > room:
            kept += chunk[:room]
            return bytes(kept), True
        kept += chunk
    return bytes(kept), False
