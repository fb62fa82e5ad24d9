"""The HTTP side: one httpx client, and the server's error shape turned into MaestroErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from maestro import __version__
from maestro.config import Config, config_load
from maestro.errors import Failed, MaestroError, Unreachable

TIMEOUT = httpx.Timeout(30.0, connect=5.0)

#: Answers that mean "fix your credentials", not "your request was wrong".
_AUTH_STATUSES = {401}


def _error_from(response: httpx.Response) -> MaestroError:
    """A MaestroError from a 4xx/5xx answer in the API's one error shape.

    Anything else (an HTML page, another service's JSON) is not MC speaking: exit 3 with
    one line naming the URL, the status and the content type, never the body itself.
    """
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details") or []
        if not isinstance(code, str) or not isinstance(message, str) or not isinstance(details, list):
            raise TypeError("not MC's error shape")
    except (ValueError, KeyError, TypeError):
        return _not_mc(response)
    message = f"{message} (HTTP {response.status_code})"
    if response.status_code in _AUTH_STATUSES or response.status_code >= 500:
        return Unreachable(message, code=code, details=details)
    return Failed(message, code=code, details=details)


def _not_mc(response: httpx.Response) -> Unreachable:
    kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip() or "no content type"
    return Unreachable(
        f"{response.request.url} answered HTTP {response.status_code} ({kind}), not MC's API: is MAESTRO_URL right?",
        code="bad_answer",
    )


class Api:
    """A thin client of MC's API at ``config.url`` with ``Authorization: Token ...``."""

    def __init__(self, config: Config, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.http = httpx.Client(
            base_url=config.url,
            headers={"Authorization": f"Token {config.token}", "User-Agent": f"maestro-cli/{__version__}"},
            timeout=TIMEOUT,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send one request; raise Unreachable when there is no answer, the error when it is not 2xx."""
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach {self.config.url}: {exc or type(exc).__name__}", code="unreachable"
            ) from exc
        if response.is_error:
            raise _error_from(response)
        return response

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """The decoded JSON body of a 2xx answer."""
        response = self.request(method, path, **kw)
        try:
            return response.json()
        except ValueError as exc:
            raise Unreachable(
                f"{self.config.url}{path} did not answer JSON: is MAESTRO_URL an MC server?", code="bad_answer"
            ) from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.json("POST", path, json=body if body is not None else {}, **kw)

    def download(self, path: str) -> Iterator[bytes]:
        """The body of a GET, in chunks (for disclosure bundles)."""
        try:
            with self.http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise _error_from(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.config.url}: {exc}", code="unreachable") from exc

    # --- lookups several commands share -------------------------------------------------

    def workflow_by_name(self, name: str) -> dict[str, Any] | None:
        """The tenant's workflow called ``name``, or None."""
        found = self.get("/api/workflows", name=name)["results"]
        return found[0] if found else None


def path_segment(value: str) -> str:
    """``value`` quoted for use as one URL path segment."""
    return quote(value, safe="")


@contextmanager
def api_session(config: Config | None = None) -> Iterator[Api]:
    """An Api for the configured server, closed afterwards."""
    api = Api(config or config_load())
    try:
        yield api
    finally:
        api.close()
