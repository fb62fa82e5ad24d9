"""Operator screens for workflows. Published versions are shown read-only and cannot be deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from workflows.choices import VersionState
from workflows.models import Workflow, WorkflowVersion


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = readonly_fields = ("version", "state", "digest", "published_at", "published_by")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "latest_version", "last_run", "last_run_at", "runs_24h", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "description", "tenant__slug"]
    readonly_fields = ["tenant", "name", "created_by", "created_at", "updated_at"]
    inlines = [WorkflowVersionInline]

    class Media:
        css = {"all": ["executions/console.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        from executions.models import Execution

        since = timezone.now() - timedelta(hours=24)
        runs = Execution.objects.filter(workflow=OuterRef("pk"), mode="run")
        return (
            super()
            .get_queryset(request)
            .select_related("tenant")
            .annotate(
                latest=Subquery(
                    WorkflowVersion.objects.filter(workflow=OuterRef("pk"), state=VersionState.PUBLISHED)
                    .order_by("-published_at")
                    .values("version")[:1]
                ),
                last_status=Subquery(runs.order_by("-created_at").values("status")[:1]),
                last_at=Subquery(runs.order_by("-created_at").values("created_at")[:1]),
                recent=Subquery(
                    runs.filter(created_at__gte=since).values("workflow").annotate(n=Count("pk")).values("n")[:1]
                ),
            )
        )

    @admin.display(description="latest version", ordering="latest")
    def latest_version(self, workflow: Any) -> str:
        return workflow.latest or "draft only"

    @admin.display(description="last run", ordering="last_status")
    def last_run(self, workflow: Any) -> str:
        if not workflow.last_status:
            return "-"
        return format_html('<span class="mc-badge mc-{}">{}</span>', workflow.last_status, workflow.last_status)

    @admin.display(description="last run at", ordering="last_at")
    def last_run_at(self, workflow: Any) -> Any:
        return workflow.last_at

    @admin.display(description="runs 24 h", ordering="recent")
    def runs_24h(self, workflow: Any) -> int:
        return workflow.recent or 0

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created through the API, which validates the manifest

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ["workflow", "version", "state", "digest", "published_at", "published_by"]
    list_filter = ["state", "workflow__tenant"]
    search_fields = ["workflow__name", "version", "digest"]
    list_select_related = ["workflow", "published_by"]
    readonly_fields = [
        "workflow",
        "state",
        "version",
        "manifest",
        "digest",
        "published_at",
        "published_by",
        "created_by",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Everything is read-only here; drafts are edited through the API so they are validated.
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A version's page: its manifest as highlighted YAML, its DAG, the diff against the previous version."""
        from executions.console import STATUS_COLOURS, manifest_graph

        if not self.has_view_permission(request) or request.method not in ("GET", "HEAD"):
            raise PermissionDenied  # read-only: a published version never changes
        version = get_object_or_404(
            WorkflowVersion.objects.select_related("workflow__tenant", "published_by"), pk=object_id
        )
        previous = (
            WorkflowVersion.objects.filter(workflow=version.workflow, state=VersionState.PUBLISHED)
            .exclude(pk=version.pk)
            .filter(published_at__lt=version.published_at or timezone.now())
            .order_by("-published_at")
            .first()
        )
        text = _yaml(version.manifest)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{version.workflow.name}@{version.version or 'draft'}",
            "version": version,
            "yaml": text,
            "previous": previous,
            "previous_yaml": _yaml(previous.manifest) if previous else "",
            "graph": {
                "graph": manifest_graph(version.manifest),
                "colours": {str(k): v for k, v in STATUS_COLOURS.items()},
            },
        }
        return TemplateResponse(request, "admin/workflows/workflowversion/version.html", context)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is not None and not obj.is_published and super().has_delete_permission(request, obj)


def _yaml(manifest: Any) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
