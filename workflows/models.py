"""Workflows and their versions: one mutable draft, any number of frozen published ones."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from mc_project.tenancy.models import Tenant
from workflows.choices import VersionState


class Workflow(models.Model):
    """A named workflow of one tenant; its content lives in ``WorkflowVersion`` rows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="workflow_name_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """One version of a workflow's manifest.

    A draft is editable and has no version number. Publishing assigns the semver, freezes
    the manifest as canonical JSON and addresses it by sha256; from then on the row is
    immutable (enforced by the API, the admin and a database trigger).
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="versions")
    state = models.CharField(max_length=16, choices=VersionState.choices, default=VersionState.DRAFT)
    # NULL (not "") until published: a draft has no number, and the unique constraint must ignore it.
    version = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    manifest = models.JSONField()
    canonical = models.BinaryField(null=True, blank=True, editable=False)
    digest = models.CharField(max_length=64, null=True, blank=True, db_index=True, help_text="sha256 of canonical")  # noqa: DJ001
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow"], condition=Q(state=VersionState.DRAFT), name="one_draft_per_workflow"
            ),
            models.UniqueConstraint(fields=["workflow", "version"], name="workflow_version_unique"),
            models.CheckConstraint(
                condition=Q(state=VersionState.DRAFT)
                | Q(version__isnull=False, digest__isnull=False, canonical__isnull=False, published_at__isnull=False),
                name="published_version_is_complete",
            ),
        ]
        indexes = [models.Index(fields=["workflow", "state", "-published_at"], name="workflowversion_latest")]

    def __str__(self) -> str:
        return f"{self.workflow.name}@{self.version or 'draft'}"

    @property
    def is_published(self) -> bool:
        return self.state == VersionState.PUBLISHED

    @property
    def snapshot_ref(self) -> str | None:
        return f"sha256:{self.digest}" if self.digest else None
