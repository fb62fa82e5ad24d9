"""Reads of receipts, scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from mc_project.errors import NotFound
from mc_project.tenancy.selectors import tenant_for_user
from receipts.models import Receipt


def receipt_list(*, user: Any) -> QuerySet[Receipt]:
    return Receipt.objects.filter(tenant=tenant_for_user(user)).select_related("actor", "workflow_version")


def receipt_get(*, user: Any, receipt_id: uuid.UUID | str) -> Receipt:
    receipt = receipt_list(user=user).filter(pk=receipt_id).first()
    if receipt is None:
        raise NotFound("No such receipt.")
    return receipt
