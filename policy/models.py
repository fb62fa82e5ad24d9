"""Policy bundles and their revisions, per-tenant modes and limits, and every decision made."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from mc_project.tenancy.models import Tenant
from policy.choices import DecisionResult, DecisionStage, PolicyMode


class PolicyBundle(models.Model):
    """One revision of a policy pack's OPA bundle; exactly one revision per pack is active.

    Revisions are kept so that every decision can name (and reproduce) the bundle that made it.
    """

    id = models.BigAutoField(primary_key=True)
    pack = models.CharField(max_length=64)
    revision = models.CharField(max_length=128)
    digest = models.CharField(max_length=71, help_text="sha256:<hex> of the bundle's files")
    roots = models.JSONField(default=list)
    files = models.JSONField(default=dict, help_text="path -> content of every file of the bundle")
    active = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pack", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["pack", "digest"], name="policybundle_pack_digest_unique"),
            models.UniqueConstraint(fields=["pack"], condition=Q(active=True), name="policybundle_one_active_per_pack"),
        ]

    def __str__(self) -> str:
        return f"{self.pack}@{self.revision}"


class TenantPolicy(models.Model):
    """A tenant's mode for one pack (enforce by default) and its limits (caps, quotas, regions)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="policies")
    pack = models.CharField(max_length=64)
    mode = models.CharField(max_length=16, choices=PolicyMode.choices, default=PolicyMode.ENFORCE)
    limits = models.JSONField(default=dict, blank=True, help_text="overrides of the pack's data.json defaults")

    class Meta:
        ordering = ["tenant", "pack"]
        verbose_name_plural = "tenant policies"
        constraints = [models.UniqueConstraint(fields=["tenant", "pack"], name="tenantpolicy_unique")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.pack}: {self.mode}"


class PolicyDecision(models.Model):
    """What one pack decided about one subject (a version or an execution), and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="policy_decisions")
    stage = models.CharField(max_length=16, choices=DecisionStage.choices)
    workflow_version = models.ForeignKey(
        "workflows.WorkflowVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="policy_decisions"
    )
    execution = models.ForeignKey(
        "executions.Execution", on_delete=models.CASCADE, null=True, blank=True, related_name="policy_decisions"
    )
    pack = models.CharField(max_length=64)
    bundle = models.ForeignKey(PolicyBundle, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    revision = models.CharField(max_length=128, blank=True, default="")
    bundle_digest = models.CharField(max_length=71, blank=True, default="")
    input_digest = models.CharField(max_length=71)
    mode = models.CharField(max_length=16, choices=PolicyMode.choices)
    result = models.CharField(max_length=16, choices=DecisionResult.choices)
    deny = models.JSONField(default=list)
    warn = models.JSONField(default=list)
    duration_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="decision_tenant_recent"),
            models.Index(fields=["pack", "result"], name="decision_pack_result"),
        ]

    def __str__(self) -> str:
        return f"{self.pack} {self.result} ({self.stage})"

    @property
    def blocks(self) -> bool:
        return self.result == DecisionResult.DENY and self.mode == PolicyMode.ENFORCE
