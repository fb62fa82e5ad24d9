"""Operator screens for workflows. Published versions are shown read-only and cannot be deleted."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

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
    list_display = ["name", "tenant", "created_by", "created_at", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "description", "tenant__slug"]
    readonly_fields = ["tenant", "name", "created_by", "created_at", "updated_at"]
    inlines = [WorkflowVersionInline]

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

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is not None and not obj.is_published and super().has_delete_permission(request, obj)
