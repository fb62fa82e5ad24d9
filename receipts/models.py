"""Receipts: MC's records of what was published and run."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from mc_project.tenancy.models import Tenant
from receipts.choices import ReceiptKind


class Receipt(models.Model):
    """A provenance record: what (``subject_digest``), who (``actor``), when, and of what kind.

    ``record`` holds the facts as a JSON document. Signing (a DSSE envelope over an
    in-toto statement) is added on top of this row; until then ``envelope`` is empty.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="receipts")
    kind = models.CharField(max_length=16, choices=ReceiptKind.choices)
    subject_digest = models.CharField(max_length=71, help_text="sha256:<hex> of what the receipt is about")
    workflow_version = models.ForeignKey(
        "workflows.WorkflowVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="receipts"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    execution = models.ForeignKey(
        "executions.Execution", on_delete=models.PROTECT, null=True, blank=True, related_name="receipts"
    )
    record = models.JSONField()
    envelope = models.JSONField(null=True, blank=True, help_text="the DSSE envelope, once signed")
    sequence = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="place in the tenant's chain of receipts, from 1, given when signed"
    )
    digest = models.CharField(max_length=71, blank=True, default="", help_text="sha256:<hex> of the signed statement")
    previous_digest = models.CharField(
        max_length=71, blank=True, default="", help_text="digest of the tenant's previous receipt; empty for the first"
    )
    key_id = models.CharField(max_length=64, blank=True, default="", help_text="the key (or signer) that signed it")
    signed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "kind", "-created_at"], name="receipt_tenant_kind"),
            models.Index(fields=["signed_at"], condition=models.Q(signed_at__isnull=True), name="receipt_unsigned"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sequence"], name="receipt_sequence_per_tenant"),
            models.UniqueConstraint(
                fields=["execution"],
                condition=models.Q(kind="execution"),
                name="receipt_one_per_execution",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} receipt {self.id}"

    @property
    def signed(self) -> bool:
        return self.envelope is not None
