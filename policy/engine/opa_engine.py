"""Evaluation by an OPA server through its REST Data API (``POST /v1/data/mc/<pack>``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from .base import pack_name, safe_input_digest, unknown_pack
from .bundle import Bundle, BundleMeta
from .decision import Decision, decision_from_document, policy_error


class OpaEngine:
    """Ask OPA for each pack's package document; any transport or server failure fails closed.

    ``bundles_meta`` says which packs the server holds, and which revision and digest
    the Decisions record (OPA's answer carries neither). Built-in errors are requested
    as errors (``strict-builtin-errors=true``), as the in-process engine does.
    """

    def __init__(
        self,
        base_url: str,
        bundles_meta: Sequence[Bundle | BundleMeta],
        timeout_s: float = 2.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.meta: dict[str, BundleMeta] = {}
        for item in bundles_meta:
            meta = item.meta if isinstance(item, Bundle) else item
            self.meta[meta.name] = meta
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    def evaluate(self, bundle_name_or_pack: str, input: dict[str, Any]) -> Decision:
        """Evaluate one pack; a failure of any kind is a policy_error deny."""
        name = pack_name(bundle_name_or_pack)
        if name not in self.meta:
            return unknown_pack(name, input)
        return self._evaluate(self.meta[name], input, safe_input_digest(input))

    def evaluate_all(self, input: dict[str, Any]) -> list[Decision]:
        """Evaluate every pack, in the order the bundles were given."""
        digest = safe_input_digest(input)
        return [self._evaluate(meta, input, digest) for meta in self.meta.values()]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpaEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _evaluate(self, meta: BundleMeta, input: dict[str, Any], digest: str) -> Decision:
        started = time.perf_counter()
        if not digest:
            return policy_error(meta, digest, "the input is not canonical JSON", 0.0)
        try:
            response = self._client.post(
                f"/v1/data/mc/{meta.name}", params={"strict-builtin-errors": "true"}, json={"input": input}
            )
        except httpx.TimeoutException:
            return policy_error(meta, digest, f"OPA did not answer within {self.timeout_s:g}s", _ms(started))
        except httpx.HTTPError as exc:
            return policy_error(meta, digest, f"OPA request failed: {type(exc).__name__}: {exc}", _ms(started))
        if response.status_code != httpx.codes.OK:
            return policy_error(meta, digest, f"OPA answered {response.status_code}: {_reason(response)}", _ms(started))
        try:
            body = response.json()
        except ValueError:
            return policy_error(meta, digest, "OPA answered with a body that is not JSON", _ms(started))
        if not isinstance(body, dict):
            return policy_error(meta, digest, "OPA answered with a body that is not an object", _ms(started))
        undefined = "result" not in body
        return decision_from_document(meta, digest, body.get("result"), _ms(started), undefined=undefined)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no reason given"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"{body.get('code', 'error')}: {body['message']}"
    return response.reason_phrase or "no reason given"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
