"""Creating executions: resolve the version, check inputs, plan, honour idempotency keys, start."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.choices import ExecutionMode, ExecutionStatus
from executions.inputs import inputs_resolve
from executions.models import Execution
from executions.packages.registry import package_problems
from executions.planner import plan_build
from executions.routing import route_for
from executions.services.dispatch import steps_create
from mc_project.errors import Conflict, NotFound, ValidationFailed
from mc_project.tenancy.models import Tenant
from policy.choices import DecisionStage
from policy.models import PolicyDecision
from policy.services import decisions_store, decisions_summary, policies_evaluate, policy_enforce
from workflows.manifest import canonical_json, check_manifest, sha256_digest
from workflows.models import Workflow, WorkflowVersion
from workflows.selectors import latest_published_pk, published_version


def request_digest(*, workflow: Workflow, version: str | None, inputs: Any, mode: str, region: str = "") -> str:
    """sha256 of what a request asked for, to tell a retry from a different request with the same key."""
    document = {"workflow": str(workflow.pk), "version": version, "inputs": inputs or {}, "mode": mode}
    if region:
        document["region"] = region
    return sha256_digest(canonical_json(document))


def _existing(*, tenant: Tenant, key: str, digest: str) -> Execution | None:
    execution = Execution.objects.filter(tenant=tenant, idempotency_key=key).first()
    if execution is not None and execution.request_digest != digest:
        raise Conflict(
            "This idempotency key was used for a different request.",
            code="idempotency_key_reused",
            details=[{"path": "/idempotency_key", "message": f"already used by execution {execution.pk}"}],
        )
    return execution


def version_for_run(*, workflow: Workflow, version: str | None) -> WorkflowVersion:
    """The published version to run: the one asked for, or the latest."""
    if version is not None:
        return published_version(workflow=workflow, version=version)
    latest = latest_published_pk(workflow)
    if latest is None:
        raise NotFound(f"Workflow {workflow.name!r} has no published version to run.", code="not_published")
    return published_version(workflow=workflow, pk=latest)


# A published version's plan before policy depends on its manifest alone, which never
# changes: each process plans a version once (bounded; the oldest plan is forgotten first).
PLAN_CACHE_SIZE = 512
_plans: OrderedDict[int, dict[str, Any]] = OrderedDict()
_plans_lock = threading.Lock()


def plan_for(version: WorkflowVersion) -> dict[str, Any]:
    """The dry-run plan of a published version (no side effects), before policy: a new dict.

    Its nested values are shared between calls: callers add keys, never change nested ones.
    """
    with _plans_lock:
        plan = _plans.get(version.pk)
    if plan is None:
        plan = plan_build(version.manifest).as_dict()
        with _plans_lock:
            _plans[version.pk] = plan
            while len(_plans) > PLAN_CACHE_SIZE:
                _plans.popitem(last=False)
    return dict(plan)


def plan_checked(
    *, version: WorkflowVersion, tenant: Tenant, actor: Any, stage: str, mode: str, region: str = "", store: bool = True
) -> tuple[dict[str, Any], list[PolicyDecision]]:
    """The plan with every policy pack's decision in ``policy_decisions`` (each decision stored).

    The request's region defaults to the workflow's own. With ``store=False`` the
    decisions are left for the caller to store.
    """
    plan = plan_for(version)
    decisions = policies_evaluate(
        store=store,
        stage=stage,
        tenant=tenant,
        actor=actor,
        manifest=version.manifest,
        plan=plan,
        mode=mode,
        region=region or version.manifest.get("region", ""),
        workflow_version=version,
    )
    plan["policy_decisions"] = decisions_summary(decisions)
    return plan, decisions


def manifest_plan(*, tenant: Tenant, actor: Any, manifest: Any, inputs: Any = None, region: str = "") -> dict[str, Any]:
    """The plan of a manifest that need not be published, with every policy pack's decision.

    The manifest is checked as a draft save checks it (schema, semantics, packages) and the
    inputs as an execution's are. The packs decide at stage ``plan``, as for a dry run; a
    deny is shown, not raised. Nothing is stored: each decision's ``id`` is null.
    """
    doc = check_manifest(manifest, extra_checks=[package_problems])
    resolved, problems = inputs_resolve(doc, inputs)
    if problems:
        raise ValidationFailed(
            "The inputs do not match the workflow's declared inputs.",
            code="invalid_inputs",
            details=[problem.as_dict() for problem in problems],
        )
    plan = plan_build(doc).as_dict()
    decisions = policies_evaluate(
        store=False,
        stage=DecisionStage.PLAN,
        tenant=tenant,
        actor=actor,
        manifest=doc,
        plan=plan,
        mode=ExecutionMode.DRY_RUN,
        region=region or doc.get("region", ""),
    )
    plan["policy_decisions"] = [summary | {"id": None} for summary in decisions_summary(decisions)]
    return {"workflow_name": doc["name"], "version": doc["version"], "inputs": resolved, **plan}


def execution_create(
    *,
    tenant: Tenant,
    actor: Any,
    workflow: Workflow,
    version: str | None = None,
    inputs: Any = None,
    mode: str = ExecutionMode.RUN,
    idempotency_key: str | None = None,
    region: str = "",
) -> tuple[Execution, bool]:
    """Create (and for ``run`` start) an execution; returns it and whether it is new.

    With an idempotency key, a repeat of the same request returns the first execution,
    also when the requests race: the unique index decides, the losers read the winner.
    A different request with a used key is a 409.
    """
    digest = request_digest(workflow=workflow, version=version, inputs=inputs, mode=mode, region=region)
    if idempotency_key is not None and (found := _existing(tenant=tenant, key=idempotency_key, digest=digest)):
        return found, False
    # An unpinned execution may be routed by a canary release; a pinned one never is.
    route = None
    if version is None:
        route = route_for(tenant_id=tenant.pk, workflow_id=workflow.pk, idempotency_key=idempotency_key)
    workflow_version = route.version if route else version_for_run(workflow=workflow, version=version)
    resolved, problems = inputs_resolve(workflow_version.manifest, inputs)
    if problems:
        raise ValidationFailed(
            "The inputs do not match the workflow's declared inputs.",
            code="invalid_inputs",
            details=[problem.as_dict() for problem in problems],
        )
    dry_run = mode == ExecutionMode.DRY_RUN
    stage = DecisionStage.PLAN if dry_run else DecisionStage.EXECUTE
    plan, decisions = plan_checked(
        version=workflow_version, tenant=tenant, actor=actor, stage=stage, mode=mode, region=region, store=False
    )
    if not dry_run and any(decision.blocks for decision in decisions):
        decisions_store(decisions)  # the refusal is recorded too
        policy_enforce(decisions)  # a dry run shows the denials; a run is refused (403)
    now = timezone.now()
    try:
        with transaction.atomic():
            execution = Execution.objects.create(
                tenant=tenant,
                workflow=workflow,
                workflow_version=workflow_version,
                mode=mode,
                region=region or workflow_version.manifest.get("region", ""),
                status=ExecutionStatus.PLANNED if dry_run else ExecutionStatus.RUNNING,
                inputs=resolved,
                inputs_digest=sha256_digest(canonical_json(resolved)),
                idempotency_key=idempotency_key,
                request_digest=digest,
                plan=plan,
                estimated_usd=float(plan.get("estimated_usd") or 0),
                steps_total=0 if dry_run else len(workflow_version.manifest["tasks"]),
                steps_remaining=0 if dry_run else len(workflow_version.manifest["tasks"]),
                created_by=actor,
                started_at=None if dry_run else now,
                finished_at=now if dry_run else None,
                canary_release_id=route.release_id if route else None,
                arm=route.arm if route else "",
            )
            for decision in decisions:
                decision.execution = execution
            decisions_store(decisions)
            if not dry_run:
                steps_create(execution, workflow_version.manifest)
    except IntegrityError:
        if idempotency_key is None:
            raise
        found = _existing(tenant=tenant, key=idempotency_key, digest=digest)
        if found is None:
            raise
        return found, False
    return execution, True


def execution_retry(*, execution: Execution, actor: Any) -> Execution:
    """Start a new execution of the same version with the same inputs (no idempotency key)."""
    if execution.mode != ExecutionMode.RUN:
        raise Conflict("Only runs can be retried; plan again instead.", code="execution_not_retryable")
    retried, _ = execution_create(
        tenant=execution.tenant,
        actor=actor,
        workflow=execution.workflow,
        version=execution.workflow_version.version,
        inputs=execution.inputs,
        region=execution.region,
    )
    return retried
