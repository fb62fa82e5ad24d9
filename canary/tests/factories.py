"""Workflows with several published versions, and releases of them, made through MC's services."""

from __future__ import annotations

from typing import Any

from canary.models import CanaryRelease
from canary.services import canary_create
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from tests.factories import UserFactory, manifest
from workflows.models import Workflow, WorkflowVersion
from workflows.services import draft_save, workflow_create, workflow_publish


def published_versions(tenant: Tenant, count: int = 2, name: str = "checkout") -> list[WorkflowVersion]:
    """``count`` published versions (1.0.0, 1.0.1, ...) of a new workflow of ``tenant``."""
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN)
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest(name=name))
    versions = [workflow_publish(workflow=workflow, actor=user).version]
    for number in range(1, count):
        draft_save(workflow=workflow, actor=user, manifest=manifest(name=name, description=f"change {number}"))
        versions.append(workflow_publish(workflow=workflow, actor=user).version)
    return versions


def publish_next(workflow: Workflow) -> WorkflowVersion:
    user = UserFactory(membership__tenant=workflow.tenant, membership__role=Role.ADMIN)
    draft_save(workflow=workflow, actor=user, manifest=manifest(name=workflow.name, description="newer"))
    return workflow_publish(workflow=workflow, actor=user).version


def release(stable: WorkflowVersion, canary: WorkflowVersion, **options: Any) -> CanaryRelease:
    return canary_create(workflow=stable.workflow, stable_version=stable, canary_version=canary, actor=None, **options)
