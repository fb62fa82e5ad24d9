"""Writes for receipts."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from receipts.choices import ReceiptKind
from receipts.models import Receipt


@transaction.atomic
def publish_record_create(*, version: Any, actor: Any) -> Receipt:
    """Record that ``actor`` published ``version`` (a ``WorkflowVersion``); unsigned for now."""
    workflow = version.workflow
    record = {
        "kind": ReceiptKind.PUBLISH.value,
        "tenant": workflow.tenant.slug,
        "workflow": workflow.name,
        "workflow_id": str(workflow.id),
        "version": version.version,
        "snapshot": version.snapshot_ref,
        "actor": actor.get_username() if actor else None,
        "published_at": version.published_at.isoformat(),
    }
    return Receipt.objects.create(
        tenant=workflow.tenant,
        kind=ReceiptKind.PUBLISH,
        subject_digest=version.snapshot_ref,
        workflow_version=version,
        actor=actor,
        record=record,
    )
