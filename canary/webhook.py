"""Signatures of the canary webhook: HMAC-SHA256 over ``<timestamp>.<body>`` with MC_CANARY_WEBHOOK_SECRET.

Headers: ``X-MC-Timestamp: <unix seconds>`` and ``X-MC-Signature: sha256=<hex>``. A
timestamp more than five minutes from now, or a signature that does not match, is a 401.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from canary.choices import WEBHOOK_TOLERANCE_S
from mc_project.errors import ApplicationError

SIGNATURE_PREFIX = "sha256="


class WebhookUnauthorized(ApplicationError):
    status = 401
    code = "webhook_unauthorized"


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-MC-Signature`` value of a request: what a sender computes."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def webhook_verify(
    *, secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> tuple[int, str]:
    """The request's timestamp and signature digest if it is signed with ``secret`` and fresh."""
    if not timestamp or not (timestamp.strip().isascii() and timestamp.strip().isdigit()):
        raise WebhookUnauthorized(
            "X-MC-Timestamp must be the time of signing in Unix seconds.", code="webhook_bad_timestamp"
        )
    sent = int(timestamp.strip())
    if abs((time.time() if now is None else now) - sent) > WEBHOOK_TOLERANCE_S:
        raise WebhookUnauthorized(
            f"X-MC-Timestamp is more than {WEBHOOK_TOLERANCE_S} seconds from now; sign the request again.",
            code="webhook_stale_timestamp",
        )
    expected = webhook_signature(secret=secret, timestamp=timestamp.strip(), body=body)
    given = (signature or "").strip()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookUnauthorized("X-MC-Signature does not match the body and timestamp.", code="webhook_bad_signature")
    return sent, expected.removeprefix(SIGNATURE_PREFIX)
