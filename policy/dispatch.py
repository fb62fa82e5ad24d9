"""Dispatch-time policy: the quotas pack asked whether one step may start now.

The engine asks only when a step would take a slot beyond its tenant's concurrency limit
(``quota_rules`` reads the limit the pack reads: the tenant's, else the bundle's
default), so a step well inside its quota starts without a policy round trip. A step
over the limit gets a stored decision (stage ``dispatch``) with the pack's explanation;
an enforced deny makes it wait in line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from executions.choices import RESOURCE_CLASSES
from mc_project.tenancy.models import Tenant
from policy.choices import DecisionStage, PolicyMode
from policy.models import PolicyBundle, PolicyDecision, TenantPolicy

logger = logging.getLogger(__name__)

QUOTAS = "quotas"
RULES_TTL_S = 2.0
"""How long a worker keeps a tenant's quota rules before reading them again."""


@dataclass(frozen=True)
class QuotaRules:
    """A tenant's quotas mode, its limits as the pack reads them, and the concurrency caps."""

    tenant_slug: str
    mode: str
    limits: dict[str, Any] = field(default_factory=dict)
    max_concurrent: dict[str, int] = field(default_factory=dict)
    """Steps of each resource class the tenant may run at once; a class missing has no cap."""


_rules: dict[Any, tuple[float, QuotaRules]] = {}


def quota_rules(tenant_id: Any) -> QuotaRules:
    """The tenant's quota rules, cached for ``RULES_TTL_S`` per process."""
    now = time.monotonic()
    cached = _rules.get(tenant_id)
    if cached is not None and now - cached[0] < RULES_TTL_S:
        return cached[1]
    rules = _rules_read(tenant_id)
    _rules[tenant_id] = (now, rules)
    return rules


def quota_rules_forget() -> None:
    """Drop cached rules (tests, and after an operator changes limits in this process)."""
    _rules.clear()


def _rules_read(tenant_id: Any) -> QuotaRules:
    from policy.services import _bundle_for

    slug = Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
    mode: str = PolicyMode.ENFORCE.value
    limits: dict[str, Any] = {}
    for pack, pack_mode, pack_limits in TenantPolicy.objects.filter(tenant_id=tenant_id).values_list(
        "pack", "mode", "limits"
    ):
        if pack == QUOTAS:
            mode = pack_mode
        limits.update(pack_limits or {})
    try:
        row = PolicyBundle.objects.filter(pack=QUOTAS, active=True).defer("files").first()
        defaults = _defaults(_bundle_for(QUOTAS, row).data)
    except Exception:  # a pack that cannot load must not let steps through: the pack decides, and denies
        logger.exception("the quotas pack could not be loaded; every step asks it (and waits)")
        return QuotaRules(slug, mode, limits, dict.fromkeys(RESOURCE_CLASSES, 0))
    caps = {}
    for resource_class in {*RESOURCE_CLASSES, *defaults, *_mapping(limits.get("max_concurrent_steps"))}:
        cap = _cap(_mapping(limits.get("max_concurrent_steps")).get(resource_class))
        cap = cap if cap is not None else _cap(defaults.get(resource_class))
        if cap is not None:
            caps[resource_class] = cap
    return QuotaRules(slug, mode, limits, caps)


def _defaults(data: Any) -> dict[str, Any]:
    node = data
    for key in ("mc", "quotas", "defaults", "max_concurrent_steps"):
        node = _mapping(node).get(key)
    return _mapping(node)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _cap(value: Any) -> int | None:
    """A cap as the pack reads it: any number (a fraction rounds up, as ``running + 1 > cap`` does)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    whole = int(value)
    return whole if whole == value else whole + 1


def dispatch_decide(
    *,
    rules: QuotaRules,
    tenant_id: Any,
    execution_id: Any,
    step: dict[str, Any],
    running: int,
    ahead: int,
) -> PolicyDecision:
    """Ask the quotas pack about ``step`` (id, uses, resource_class) starting now; store the decision.

    ``running`` steps of its class run for the tenant and ``ahead`` wait in line before it.
    """
    from policy.engine import POLICY_ERROR, Decision, input_digest
    from policy.services import _bundle_for, _engine_for, policy_input

    resource_class = step["resource_class"]
    document = policy_input(
        stage=DecisionStage.DISPATCH,
        tenant=Tenant(pk=tenant_id, slug=rules.tenant_slug),
        actor=None,
        manifest={},
        plan={"steps": [{**step, "shards": 1}]},
        mode="run",
        region="",
        limits=rules.limits,
        usage={
            "running_steps": {rc: running if rc == resource_class else 0 for rc in RESOURCE_CLASSES},
            "waiting_ahead": {resource_class: ahead},
            "spend_today_usd": 0,
        },
    )
    row = PolicyBundle.objects.filter(pack=QUOTAS, active=True).defer("files").first()
    try:
        bundle = _bundle_for(QUOTAS, row)
    except Exception as exc:
        message = f"policy pack {QUOTAS!r} could not be loaded: {exc}"
        explanation = {"code": POLICY_ERROR, "message": message, "path": ""}
        decision = Decision(QUOTAS, "", "", input_digest(document), "deny", [explanation], [], 0.0, message)
    else:
        (decision,) = _engine_for([bundle]).evaluate_all(document)
    return PolicyDecision.objects.create(
        tenant_id=tenant_id,
        stage=DecisionStage.DISPATCH,
        execution_id=execution_id,
        pack=QUOTAS,
        bundle=row,
        revision=decision.revision,
        bundle_digest=decision.bundle_digest,
        input_digest=decision.input_digest,
        mode=rules.mode,
        result=decision.result,
        deny=decision.deny,
        warn=decision.warn,
        duration_ms=decision.duration_ms,
    )
