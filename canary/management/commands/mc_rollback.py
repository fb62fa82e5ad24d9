"""Roll a workflow back: its running release, or with --to, all traffic to an older version (docs/canary.md)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from canary.services import workflow_rollback
from mc_project.errors import ApplicationError
from mc_project.tenancy.models import Tenant
from workflows.choices import VersionState
from workflows.models import Workflow


class Command(BaseCommand):
    help = (
        "mc_rollback WORKFLOW [--to VERSION] [--tenant SLUG]: roll back the workflow's running or paused canary "
        "release; with --to, send every execution that pins no version to VERSION."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", help="the workflow's name (or id)")
        parser.add_argument("--to", metavar="VERSION", help="a published version to route all traffic to")
        parser.add_argument("--tenant", metavar="SLUG", help="the workflow's tenant (needed if several have one)")
        parser.add_argument("--reason", default="", help="why, kept on the release")

    def handle(self, *args: Any, workflow: str, to: str | None, tenant: str | None, reason: str, **_: Any) -> None:
        target = _workflow(workflow, tenant)
        version = None
        if to is not None:
            version = target.versions.filter(state=VersionState.PUBLISHED, version=to).first()
            if version is None:
                raise CommandError(f"Workflow {target.name!r} ({target.tenant.slug}) has no published version {to!r}.")
        try:
            release = workflow_rollback(
                workflow=target, actor=None, to=version, reason=reason or "manage.py mc_rollback"
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{target.tenant.slug}/{target.name}: rolled back (release #{release.pk}); executions that pin no "
            f"version now run {release.stable_version.version} instead of {release.canary_version.version}."
        )


def _workflow(ref: str, tenant_slug: str | None) -> Workflow:
    workflows = Workflow.objects.select_related("tenant")
    if tenant_slug is not None:
        if not Tenant.objects.filter(slug=tenant_slug).exists():
            raise CommandError(f"No tenant {tenant_slug!r}.")
        workflows = workflows.filter(tenant__slug=tenant_slug)
    found = list(workflows.filter(name=ref)[:2])
    if not found:
        try:
            found = list(workflows.filter(pk=uuid.UUID(ref)))
        except ValueError:
            found = []
    if not found:
        where = f" in tenant {tenant_slug!r}" if tenant_slug else ""
        raise CommandError(f"No workflow {ref!r}{where}.")
    if len(found) > 1:
        tenants = ", ".join(sorted(w.tenant.slug for w in workflows.filter(name=ref)))
        raise CommandError(f"Several tenants have a workflow {ref!r} ({tenants}); name one with --tenant.")
    return found[0]
