"""The one place a canary release's state changes: legal transitions only."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from canary.choices import CANARY_TRANSITIONS
from canary.models import CanaryRelease
from canary.signals import canary_state_changed
from mc_project.errors import Conflict


def canary_transition(
    release: CanaryRelease, to: str, *, actor: Any = None, reason: str = "", **fields: Any
) -> CanaryRelease:
    """Move ``release`` (a row locked by the caller) to ``to``, setting ``fields`` too.

    An illegal move is a 409 (``canary_transition_illegal``): operators ask for these
    through the API, so an ended release being promoted is an expected failure, not a bug.
    """
    previous = release.state
    if to not in CANARY_TRANSITIONS[previous]:
        raise Conflict(
            f"A {previous} release cannot become {to}.",
            code="canary_transition_illegal",
            details=[{"path": "/state", "message": f"{previous} -> {to} is not allowed"}],
        )
    release.state = to
    release.reason = reason[:500]
    for name, value in fields.items():
        setattr(release, name, value)
    release.save(update_fields=["state", "reason", "updated_at", *fields])
    transaction.on_commit(
        lambda: canary_state_changed.send(
            sender=CanaryRelease, release=release, previous=previous, actor=actor, reason=reason
        )
    )
    return release
