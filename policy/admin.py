"""Operator screens for policy: bundle revisions (read-only), tenant modes and limits, decisions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

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
    list_display = ["created_at", "tenant", "stage", "pack", "result", "mode", "revision", "duration_ms"]
    list_filter = ["result", "pack", "stage", "mode", "tenant"]
    search_fields = ["execution__id", "workflow_version__workflow__name", "input_digest"]
    list_select_related = ["tenant"]
    readonly_fields = [field.name for field in PolicyDecision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
