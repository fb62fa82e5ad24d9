"""The ``mc.policy/v1`` input document every pack sees, built from plain values (no Django).

``policy.services.policy_input`` calls it for the server, and ``maestro.policytest`` for a
repository's CI, so both evaluate the packs on the same document (docs/policy.md).
"""

from __future__ import annotations

import math
from typing import Any

INPUT_VERSION = "mc.policy/v1"


def input_document(
    *,
    stage: str,
    tenant: str,
    actor: str,
    manifest: dict[str, Any],
    plan: dict[str, Any],
    mode: str,
    region: str,
    limits: dict[str, Any],
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The document for ``manifest`` and its ``plan``, asked by ``actor`` of the tenant ``tenant`` (slug)."""
    tasks = {task["id"]: task for task in manifest.get("tasks", [])}
    steps = [
        {
            "id": step["id"],
            "uses": step["uses"],
            "resource_class": step["resource_class"],
            "shards": step.get("shards", 1),
            "needs": step.get("needs", []),
            "side_effects": step.get("side_effects", False),
            "data_classes": step.get("data_classes", []),
            "regions": tasks.get(step["id"], {}).get("regions", []),
        }
        for step in plan.get("steps", [])
    ]
    return {
        "version": INPUT_VERSION,
        "stage": str(stage),
        "request": {
            "tenant": tenant,
            "actor": actor,
            "mode": str(mode),
            "region": region,
            "resource_classes": sorted({step["resource_class"] for step in steps}),
        },
        "manifest": manifest,
        "plan": {
            "estimated_usd": micro_up(plan.get("estimated_usd", 0)),
            "estimated_seconds": micro_up(plan.get("estimated_seconds", 0)),
            "steps": steps,
            "side_effects": plan.get("side_effects", []),
            "data_classes": plan.get("data_classes", []),
        },
        "usage": usage,
        "limits": limits,
    }


def micro_up(value: Any) -> Any:
    """A plan figure rounded up to six decimals: never below the estimate, and exact for regopy.

    rego-cpp's fast input path keeps six decimals; a document with a longer float takes
    its text parser, several times slower on a large plan. Rounding up keeps a budget
    check conservative (an estimate of 1.5000001 is read as 1.500001, over a 1.50 cap).
    """
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    return math.ceil(round(value * 1_000_000, 3)) / 1_000_000
