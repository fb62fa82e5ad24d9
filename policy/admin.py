"""Operator screens for policy: bundle revisions (read-only), tenant modes and limits, decisions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from policy.models import PolicyBundle, PolicyDecision, TenantPolicy


@admin.register(PolicyBundle)
class PolicyBundleAdmin(admin.ModelAdmin):
    list_display = ["pack", "revision", "digest", "active", "uploaded_by", "created_at"]
    list_filter = ["pack", "active"]
    readonly_fields = [field.name for field in PolicyBundle._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # loaded by `mc_policy sync` or uploaded through the API, which compile them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decisions name their revision


@admin.register(TenantPolicy)
class TenantPolicyAdmin(admin.ModelAdmin):
    list_display = ["tenant", "pack", "mode"]
    list_filter = ["pack", "mode", "tenant"]


@admin.register(PolicyDecision)
class PolicyDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "stage",
        "pack",
        "result_badge",
        "mode",
        "workflow",
        "execution_link",
        "revision",
        "duration_ms",
    ]
    list_filter = ["result", "pack", "stage", "mode", "tenant"]
    search_fields = ["execution__id", "workflow_version__workflow__name", "input_digest"]
    readonly_fields = [field.name for field in PolicyDecision._meta.fields]

    class Media:
        css = {"all": ["executions/console.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyDecision]:
        return (
            super()
            .get_queryset(request)
            .select_related("tenant", "execution__workflow", "workflow_version__workflow")
            .defer(
                "execution__plan",
                "execution__inputs",
                "workflow_version__manifest",
                "workflow_version__canonical",
            )
        )

    @admin.display(description="result", ordering="result")
    def result_badge(self, decision: PolicyDecision) -> str:
        return format_html('<span class="mc-badge mc-decision-{}">{}</span>', decision.result, decision.result)

    @admin.display(description="workflow")
    def workflow(self, decision: PolicyDecision) -> str:
        version = decision.workflow_version
        if version is not None:
            return f"{version.workflow.name}@{version.version or 'draft'}"
        return decision.execution.workflow.name if decision.execution is not None else "-"

    @admin.display(description="execution")
    def execution_link(self, decision: PolicyDecision) -> str:
        if decision.execution_id is None:
            return "-"
        url = reverse("admin:executions_execution_change", args=[decision.execution_id])
        return format_html('<a href="{}">{}</a>', url, str(decision.execution_id)[:8])

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
