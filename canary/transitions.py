"""The one place a canary release's state or weight changes: legal moves only, each recorded as an event."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from canary.choices import CANARY_TRANSITIONS, EVENT_OF_STATE, Trigger
from canary.models import CanaryEvent, CanaryRelease
from canary.signals import canary_state_changed
from mc_project.errors import Conflict


def canary_transition(
    release: CanaryRelease,
    to: str,
    *,
    actor: Any = None,
    reason: str = "",
    trigger: str = Trigger.MANUAL,
    figures: dict[str, Any] | None = None,
    **fields: Any,
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
    canary_event_record(release, EVENT_OF_STATE[to], actor=actor, reason=reason, trigger=trigger, figures=figures)
    transaction.on_commit(
        lambda: canary_state_changed.send(
            sender=CanaryRelease, release=release, previous=previous, actor=actor, reason=reason, trigger=trigger
        )
    )
    return release


def canary_event_record(
    release: CanaryRelease,
    kind: str,
    *,
    actor: Any = None,
    reason: str = "",
    trigger: str = Trigger.MANUAL,
    figures: dict[str, Any] | None = None,
) -> CanaryEvent:
    """Record what just happened to ``release`` (its state and weight as they are now)."""
    return CanaryEvent.objects.create(
        release=release,
        kind=kind,
        trigger=trigger,
        state=release.state,
        weight=release.weight,
        reason=reason[:500],
        figures=figures,
        actor=actor if getattr(actor, "pk", None) else None,
    )
