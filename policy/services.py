"""Policy decisions: build the input document, evaluate the packs, store and enforce the result.

Every evaluation is stored as a ``PolicyDecision`` naming the bundle revision that made it.
A pack that cannot be loaded or evaluated denies (``policy_error``): MC never allows
silently. A deny blocks only where the tenant's mode for that pack is ``enforce``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from mc_project.errors import Forbidden, ValidationFailed
from mc_project.tenancy.models import Tenant
from policy.choices import PACKS, DecisionStage, PolicyMode
from policy.document import input_document
from policy.models import PolicyBundle, PolicyDecision, TenantPolicy

BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"

CACHE_TTL_S = 2.0
"""How stale a process may read tenant policies and active revisions changed by another one."""

_tenant_cache: dict[Any, tuple[float, dict[str, str], dict[str, Any]]] = {}
_active_cache: tuple[float, dict[str, PolicyBundle]] | None = None
_bundles: dict[tuple[str, str], Any] = {}
_engines: dict[tuple[tuple[str, str], ...], Any] = {}
_engines_lock = threading.Lock()


def usage_for(tenant: Tenant, *, running_steps: bool = True) -> dict[str, Any]:
    """What the tenant uses now: running steps per resource class (from rows), spend today.

    Only dispatch decisions read the running steps; the other stages skip that count.
    """
    from executions.choices import RESOURCE_CLASSES, ExecutionMode, StepStatus
    from executions.models import Execution, StepRun

    running: dict[str, int] = {}
    if running_steps:
        running = dict(
            StepRun.objects.filter(execution__tenant=tenant, status=StepStatus.RUNNING)
            .values_list("resource_class")
            .annotate(n=Count("pk"))
            .values_list("resource_class", "n")
        )
    midnight = datetime.combine(timezone.now().date(), datetime.min.time(), tzinfo=UTC)
    today = Execution.objects.filter(tenant=tenant, mode=ExecutionMode.RUN, created_at__gte=midnight)
    spend = today.aggregate(total=Sum("estimated_usd"))["total"] or 0.0
    return {"running_steps": {rc: running.get(rc, 0) for rc in RESOURCE_CLASSES}, "spend_today_usd": round(spend, 6)}


def tenant_policies(tenant: Tenant) -> tuple[dict[str, str], dict[str, Any]]:
    """The tenant's mode per pack (enforce unless set) and its limits, merged over every pack.

    Read at most every ``CACHE_TTL_S`` per process (at once after a change in this one).
    """
    now = time.monotonic()
    cached = _tenant_cache.get(tenant.pk)
    if cached is not None and now - cached[0] < CACHE_TTL_S:
        return dict(cached[1]), dict(cached[2])
    modes = dict.fromkeys(PACKS, PolicyMode.ENFORCE.value)
    limits: dict[str, Any] = {}
    if settings.MC_BUDGET_MAX_COST_PER_RUN_USD is not None:
        # The deployment's cap (the chart's budgets.maxCostPerRunUSD); a tenant's own limit wins.
        limits["max_cost_per_run_usd"] = settings.MC_BUDGET_MAX_COST_PER_RUN_USD
    for row in TenantPolicy.objects.filter(tenant=tenant):
        modes[row.pack] = row.mode
        limits.update(row.limits or {})
    _tenant_cache[tenant.pk] = (now, modes, limits)
    return dict(modes), dict(limits)


def active_bundles() -> dict[str, PolicyBundle]:
    """Each pack's active bundle revision (without its files), cached like ``tenant_policies``."""
    global _active_cache
    now = time.monotonic()
    if _active_cache is None or now - _active_cache[0] >= CACHE_TTL_S:
        rows = {row.pack: row for row in PolicyBundle.objects.filter(active=True).defer("files")}
        _active_cache = (now, rows)
    return _active_cache[1]


def policy_caches_clear(**_: Any) -> None:
    """Forget cached tenant policies and active revisions (connected to their models' saves)."""
    global _active_cache
    from policy.dispatch import quota_rules_forget

    _tenant_cache.clear()
    _active_cache = None
    quota_rules_forget()


def policy_input(
    *,
    stage: str,
    tenant: Tenant,
    actor: Any,
    manifest: dict[str, Any],
    plan: dict[str, Any],
    mode: str,
    region: str,
    limits: dict[str, Any],
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The input document every pack sees (version mc.policy/v1, docs/policy.md)."""
    return input_document(
        stage=stage,
        tenant=tenant.slug,
        actor=getattr(actor, "username", "") or "",
        manifest=manifest,
        plan=plan,
        mode=mode,
        region=region,
        limits=limits,
        usage=usage,
    )


def _bundle_for(pack: str, row: PolicyBundle | None) -> Any:
    """``pack``'s active bundle ``row`` (or the one on disk), loaded once per revision."""
    from policy.engine import bundle_from_files, load_bundle

    key = (pack, row.digest if row else f"disk:{BUNDLES_DIR / pack}")
    with _engines_lock:
        bundle = _bundles.get(key)
        if bundle is None:
            if row is not None:
                bundle = bundle_from_files({path: text.encode() for path, text in row.files.items()}, name=pack)
            else:
                bundle = load_bundle(BUNDLES_DIR / pack, name=pack)
            _bundles[key] = bundle
    return bundle


def _engine_for(bundles: Sequence[Any]) -> Any:
    """One engine for these bundle revisions, built once: all packs in one evaluation.

    With ``MC_OPA_URL`` set the engine asks that OPA server, which must hold the same
    bundles; otherwise it evaluates them in-process with regopy.
    """
    from django.conf import settings

    from policy.engine import OpaEngine, RegoEngine

    url, timeout_s = settings.MC_OPA_URL, settings.MC_POLICY_TIMEOUT
    # Keyed on where and how long it asks too, so a changed setting never reuses an old engine.
    key = ((url, repr(timeout_s)), *((bundle.name, bundle.digest) for bundle in bundles))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if url:
                engine = OpaEngine(url, list(bundles), timeout_s=timeout_s)
            else:
                engine = RegoEngine(list(bundles), timeout_s=timeout_s)
            _engines[key] = engine
    return engine


def policies_evaluate(
    *,
    stage: str,
    tenant: Tenant,
    actor: Any,
    manifest: dict[str, Any],
    plan: dict[str, Any],
    mode: str,
    region: str = "",
    packs: Sequence[str] = PACKS,
    workflow_version: Any = None,
    execution: Any = None,
    store: bool = True,
) -> list[PolicyDecision]:
    """Evaluate ``packs`` and store one decision each; never raises for a broken pack (it denies).

    With ``store=False`` the decisions come back unsaved, for the caller to store in its
    own transaction (with the execution they decided about).
    """
    from policy.engine import POLICY_ERROR, Decision, input_digest

    modes, limits = tenant_policies(tenant)
    static = stage == DecisionStage.PUBLISH  # the static packs read no usage
    document = policy_input(
        stage=stage,
        tenant=tenant,
        actor=actor,
        manifest=manifest,
        plan=plan,
        mode=mode,
        region=region,
        limits=limits,
        usage={"running_steps": {}, "spend_today_usd": 0}
        if static
        else usage_for(tenant, running_steps=stage == DecisionStage.DISPATCH),
    )
    active = active_bundles()
    loaded, verdicts = [], {}
    for pack in packs:
        try:
            loaded.append(_bundle_for(pack, active.get(pack)))
        except Exception as exc:  # a pack that cannot load must deny, not crash the request
            message = f"policy pack {pack!r} could not be loaded: {exc}"
            explanation = {"code": POLICY_ERROR, "message": message, "path": ""}
            verdicts[pack] = Decision(pack, "", "", input_digest(document), "deny", [explanation], [], 0.0, message)
    if loaded:
        for bundle, verdict in zip(loaded, _engine_for(loaded).evaluate_all(document), strict=True):
            verdicts[bundle.name] = verdict
    decisions = []
    for pack in packs:
        row, decision = active.get(pack), verdicts[pack]
        decisions.append(
            PolicyDecision(
                tenant=tenant,
                stage=stage,
                workflow_version=workflow_version,
                execution=execution,
                pack=pack,
                bundle=row,
                revision=decision.revision,
                bundle_digest=decision.bundle_digest,
                input_digest=decision.input_digest,
                mode=modes.get(pack, PolicyMode.ENFORCE),
                result=decision.result,
                deny=decision.deny,
                warn=decision.warn,
                duration_ms=decision.duration_ms,
            )
        )
    return decisions_store(decisions) if store else decisions


def decisions_store(decisions: list[PolicyDecision]) -> list[PolicyDecision]:
    """Store decisions made by ``policies_evaluate(store=False)``, and count them."""
    from mc_project.metrics import decisions_counted

    stored = PolicyDecision.objects.bulk_create(decisions)
    decisions_counted(stored)
    return stored


def decisions_summary(decisions: Iterable[PolicyDecision]) -> list[dict[str, Any]]:
    """The ``policy_decisions`` of a plan: one entry per pack with its explanations."""
    return [
        {
            "id": str(decision.pk),
            "pack": decision.pack,
            "result": decision.result,
            "mode": decision.mode,
            "blocks": decision.blocks,
            "revision": decision.revision,
            "bundle_digest": decision.bundle_digest,
            "deny": decision.deny,
            "warn": decision.warn,
        }
        for decision in decisions
    ]


def policy_enforce(decisions: Iterable[PolicyDecision]) -> None:
    """Raise 403 ``policy_denied`` with every explanation if an enforced pack denied."""
    blocking = [decision for decision in decisions if decision.blocks]
    if not blocking:
        return
    details = [
        {"path": item.get("path") or "", "message": f"{decision.pack}: {item.get('code')}: {item.get('message')}"}
        for decision in blocking
        for item in decision.deny
    ]
    packs = ", ".join(sorted({decision.pack for decision in blocking}))
    raise Forbidden(f"Denied by policy ({packs}).", code="policy_denied", details=details)


def bundle_activate(*, pack: str, files: dict[str, bytes], actor: Any = None) -> tuple[PolicyBundle, bool]:
    """Check a bundle and make it ``pack``'s active revision; returns it and whether it is new.

    A bundle that does not load (syntax error, bad manifest or data) is refused with its
    file, line and column, and the active revision stays active. Earlier revisions are
    kept: decisions name the one that made them.
    """
    from policy.engine import BundleError, bundle_from_files

    try:
        bundle = bundle_from_files(files, name=pack)
    except BundleError as exc:
        where = f"{exc.file}:{exc.line}:{exc.column}" if exc.line else exc.file
        raise ValidationFailed(
            f"Bundle {pack!r} was refused: {exc}",
            code="bundle_invalid",
            details=[{"path": f"/{exc.file}" if exc.file else "", "message": f"{where}: {exc.message}"}],
        ) from None
    with transaction.atomic():
        rows = PolicyBundle.objects.select_for_update().filter(pack=pack)
        row = rows.filter(digest=bundle.digest).first()
        created = row is None
        if row is None:
            row = PolicyBundle(
                pack=pack,
                revision=bundle.revision,
                digest=bundle.digest,
                roots=list(bundle.roots),
                files={path: content.decode() for path, content in files.items()},
                uploaded_by=actor,
            )
        rows.exclude(pk=row.pk).filter(active=True).update(active=False)
        row.active = True
        row.save()
    return row, created
