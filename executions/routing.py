"""Which published version an execution that pins none runs: the hook a release manager fills.

The engine knows nothing of canary releases. An app that routes unpinned executions (the
canary app, in its ``ready``) registers one router; ``route_for`` asks it. A router
returns ``None`` to let the latest published version run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.models import WorkflowVersion


@dataclass(frozen=True)
class Route:
    """The version an unpinned execution runs, and the release (a CanaryRelease pk) and arm it counts for."""

    version: WorkflowVersion
    release_id: int
    arm: str


Router = Callable[..., Route | None]
_routers: list[Router] = []


def router_register(router: Router) -> None:
    """Let ``router(tenant_id=, workflow_id=, idempotency_key=)`` route unpinned executions (once)."""
    if router not in _routers:
        _routers.append(router)


def route_for(*, tenant_id: Any, workflow_id: Any, idempotency_key: str | None) -> Route | None:
    """The first registered router's route of an unpinned execution, or None."""
    for router in _routers:
        route = router(tenant_id=tenant_id, workflow_id=workflow_id, idempotency_key=idempotency_key)
        if route is not None:
            return route
    return None
