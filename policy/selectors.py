"""Reads of policy decisions, scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from mc_project.errors import NotFound
from mc_project.tenancy.selectors import tenant_for_user
from policy.models import PolicyDecision


def decision_list(*, user: Any) -> QuerySet[PolicyDecision]:
    return PolicyDecision.objects.filter(tenant=tenant_for_user(user)).select_related("workflow_version__workflow")


def decision_get(*, user: Any, decision_id: uuid.UUID | str) -> PolicyDecision:
    decision = decision_list(user=user).filter(pk=decision_id).first()
    if decision is None:
        raise NotFound("No such policy decision.")
    return decision
