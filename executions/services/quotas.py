"""Tenant concurrency quotas at dispatch: a step beyond its quota waits in line for a slot.

A slot is not a counter that could leak: the slots a tenant holds in a resource class
are its step rows in status ``running``. A slot frees exactly when its row leaves
``running``, by whichever path (success, failure, retry, cancel). A worker killed
mid-step holds its slot only until the step is recovered: the redelivered message
starts a new attempt in the same slot, or the step fails and frees it.

The line: a step that cannot start is marked held (``quota_held_since``) and waits; it
may start once the running steps plus the held steps ahead of it leave room, so
steps start in the order they came. Deciding is serialised per tenant and class (a
transaction-scoped advisory lock on PostgreSQL), so two workers never take the last
slot together. When a slot frees, the worker that freed it offers it to the head of
the line by sending the held step's message again (``quota_release``); the offer is
marked, so two freed slots never offer the same step twice, and an offer not taken
within ``OFFER_TIMEOUT`` is made again. Shards of a matrix task must complete inside
their chord, so a held shard polls instead. ``recover_stalled`` re-offers on its beat,
should a worker die between freeing a slot and offering it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from executions.choices import StepKind, StepStatus
from executions.models import Execution, StepRun
from executions.services.messages import message_for, send_steps
from executions.transitions import QuotaCheck
from policy.choices import PolicyMode
from policy.dispatch import QuotaRules, dispatch_decide, quota_rules

logger = logging.getLogger(__name__)

OFFER_TIMEOUT = timedelta(seconds=30)
SHARD_POLL_S = 0.5
_WAITING = (StepStatus.QUEUED, StepStatus.RETRYING)
# Rows that hold a slot: running steps, except a matrix task's own row (its shards hold the slots).
_HOLDS_SLOT = Q(status=StepStatus.RUNNING) & ~Q(kind=StepKind.STEP, matrix__isnull=False)
_IN_LINE = Q(status__in=_WAITING, quota_held_since__isnull=False)


@dataclass(frozen=True)
class Gate:
    """A step about to start in a resource class where its tenant has a concurrency cap."""

    step_pk: int
    execution_id: Any
    tenant_id: Any
    resource_class: str
    kind: str
    max_parallel: int | None
    held_since: Any
    cap: int
    rules: QuotaRules
    step: dict[str, Any]
    """What the quotas pack is told about the step: id, uses, resource_class."""

    @property
    def check(self) -> QuotaCheck:
        return QuotaCheck(self.tenant_id, self.resource_class, self.held_since, self.cap)


@dataclass(frozen=True)
class Slots:
    running: int
    ahead: int


class QuotaHeld(Exception):
    """The step waits in line for a slot. ``delay``: a shard polls again after it; a step waits for an offer."""

    def __init__(self, delay: float | None) -> None:
        super().__init__("waiting for a slot of the tenant's concurrency quota")
        self.delay = delay


_GATE_SQL = """
SELECT s.execution_id, e.tenant_id, s.resource_class, s.kind, s.max_parallel, s.quota_held_since, s.step_id, s.uses
FROM executions_steprun s JOIN executions_execution e ON e.id = s.execution_id
WHERE s.id = %s AND s.status IN (%s, %s)
"""


def quota_gate(step_pk: int) -> Gate | None:
    """The gate of a queued or retrying step whose class is capped for its tenant; else None."""
    with connection.cursor() as cursor:
        cursor.execute(_GATE_SQL, [step_pk, StepStatus.QUEUED, StepStatus.RETRYING])
        row = cursor.fetchone()
    if row is None:
        return None
    execution_id, tenant_id, resource_class, kind, max_parallel, held_since, step_id, uses = row
    rules = quota_rules(tenant_id)
    cap = rules.max_concurrent.get(resource_class)
    if cap is None:
        return None
    if isinstance(held_since, str):  # SQLite hands raw SQL its text
        held_since = StepRun._meta.get_field("quota_held_since").to_python(held_since)
    step = {"id": step_id, "uses": uses, "resource_class": resource_class}
    return Gate(step_pk, execution_id, tenant_id, resource_class, kind, max_parallel, held_since, cap, rules, step)


def quota_lock_key(tenant_id: Any, resource_class: str) -> str:
    """The name of the advisory lock that serialises one tenant's quota decisions in a class."""
    return f"mc.quota:{tenant_id}:{resource_class}"


def quota_lock(tenant_id: Any, resource_class: str, step_pk: int | None = None) -> None:
    """Serialise quota decisions of one tenant and class until the transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [quota_lock_key(tenant_id, resource_class)]
            )
    elif step_pk is not None:  # SQLite: a first write takes the database's one write lock
        StepRun.objects.filter(pk=step_pk).update(quota_released_at=None)


def slots_taken(gate: Gate) -> Slots:
    """Steps of the gate's tenant and class running now, and held steps in line before the gate's."""
    ahead = _IN_LINE & ~Q(pk=gate.step_pk)
    if gate.held_since is not None:
        ahead &= Q(quota_held_since__lt=gate.held_since) | Q(quota_held_since=gate.held_since, pk__lt=gate.step_pk)
    counts = (
        StepRun.objects.filter(execution__tenant_id=gate.tenant_id, resource_class=gate.resource_class)
        .filter(Q(status=StepStatus.RUNNING) | _IN_LINE)
        .aggregate(running=Count("pk", filter=_HOLDS_SLOT), ahead=Count("pk", filter=ahead))
    )
    return Slots(counts["running"], counts["ahead"])


def quota_admits(gate: Gate) -> tuple[bool, Slots]:
    """Whether the gate's step may start now (call under ``quota_lock``), and the slots counted.

    Within the cap it may, without asking the pack. Beyond it the quotas pack decides
    and the decision is stored; an enforced deny (or a pack that fails) makes it wait.
    A step already held and asked about again is not asked twice: it keeps waiting.
    """
    slots = slots_taken(gate)
    if slots.running + slots.ahead < gate.cap:
        return True, slots
    if gate.held_since is not None and gate.rules.mode == PolicyMode.ENFORCE:
        return False, slots
    decision = dispatch_decide(
        rules=gate.rules,
        tenant_id=gate.tenant_id,
        execution_id=gate.execution_id,
        step=gate.step,
        running=slots.running,
        ahead=slots.ahead,
    )
    from mc_project.metrics import decisions_counted

    decisions_counted([decision])
    return not decision.blocks, slots


def quota_hold(gate: Gate) -> bool:
    """Put the gate's step in line (keeping its place if it was already in it); False if it moved on."""
    held = StepRun.objects.filter(pk=gate.step_pk, status__in=_WAITING).update(
        quota_held_since=gate.held_since or timezone.now(), quota_released_at=None
    )
    return held == 1


_LINE_EXISTS_SQL = """
SELECT EXISTS (
  SELECT 1 FROM executions_steprun h JOIN executions_execution e ON e.id = h.execution_id
  WHERE h.resource_class = %s AND h.quota_held_since IS NOT NULL AND h.status IN (%s, %s) AND e.tenant_id = %s
)
"""


def quota_release(tenant_id: Any, resource_class: str) -> int:
    """Offer the slots free in a tenant's class to the head of its line; return the offers made."""
    with connection.cursor() as cursor:
        tenant = Execution._meta.get_field("tenant").get_db_prep_value(tenant_id, connection)
        cursor.execute(_LINE_EXISTS_SQL, [resource_class, StepStatus.QUEUED, StepStatus.RETRYING, tenant])
        (line,) = cursor.fetchone()
    if not line:
        return 0
    base = StepRun.objects.filter(execution__tenant_id=tenant_id, resource_class=resource_class)
    cap = quota_rules(tenant_id).max_concurrent.get(resource_class)
    now = timezone.now()
    with transaction.atomic():
        quota_lock(tenant_id, resource_class)
        line = base.filter(_IN_LINE).order_by("quota_held_since", "pk")
        if cap is not None:
            free = cap - base.filter(_HOLDS_SLOT).count()
            line = line[: max(free, 0)]
        offered = [
            step
            for step in line.only(
                "pk", "kind", "queue", "resource_class", "timeout_seconds", "priority", "quota_released_at"
            )
            if step.kind != StepKind.SHARD
            and (step.quota_released_at is None or step.quota_released_at < now - OFFER_TIMEOUT)
        ]
        if not offered:
            return 0
        StepRun.objects.filter(pk__in=[step.pk for step in offered]).update(quota_released_at=now)
        messages = [message_for(step, tenant_id=tenant_id) for step in offered]
        transaction.on_commit(lambda: send_steps(messages))
    return len(offered)


def quota_slot_freed(step: StepRun, tenant_id: Any = None) -> None:
    """A step of this tenant and class stopped running: offer its slot to the line."""
    tenant_id = tenant_id or _tenant_of(step.execution_id)
    try:
        quota_release(tenant_id, step.resource_class)
    except Exception:  # the beat re-offers; a finished step must not fail over it
        logger.exception("could not offer the freed slot of step %s", step.pk)


def quota_release_all() -> int:
    """Offer free slots in every tenant and class that has a line (the recovery beat)."""
    lines = StepRun.objects.filter(_IN_LINE).values_list("execution__tenant_id", "resource_class").distinct().order_by()
    return sum(quota_release(tenant_id, resource_class) for tenant_id, resource_class in lines)


_tenants: dict[Any, Any] = {}


def _tenant_of(execution_id: Any) -> Any:
    tenant_id = _tenants.get(execution_id)
    if tenant_id is None:
        if len(_tenants) > 10_000:
            _tenants.clear()
        tenant_id = _tenants[execution_id] = Execution.objects.values_list("tenant_id", flat=True).get(pk=execution_id)
    return tenant_id
