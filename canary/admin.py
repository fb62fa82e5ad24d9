"""Operator screens for canary releases: pause, resume, analyse, promote and roll back as actions; events inline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from canary import services
from canary.models import CanaryEvent, CanaryRelease
from mc_project.errors import ApplicationError


class CanaryEventInline(admin.TabularInline):
    model = CanaryEvent
    fields = readonly_fields = ("created_at", "kind", "trigger", "state", "weight", "actor", "reason", "figures")
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CanaryRelease)
class CanaryReleaseAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "workflow",
        "stable",
        "canary",
        "strategy",
        "weight",
        "state",
        "verdict",
        "created_at",
        "ended_at",
    ]
    list_filter = ["state", "strategy", "workflow__tenant"]
    search_fields = ["workflow__name", "reason"]
    list_select_related = ["workflow", "stable_version", "canary_version"]
    readonly_fields = [field.name for field in CanaryRelease._meta.fields]
    actions = ["pause", "resume", "analyse", "promote", "rollback"]
    inlines = [CanaryEventInline]

    @admin.display(description="last analysis")
    def verdict(self, release: CanaryRelease) -> str:
        analysis = release.analysis or {}
        return f"{analysis['verdict']}: {analysis['reason']}" if analysis else "-"

    @admin.display(description="stable")
    def stable(self, release: CanaryRelease) -> str:
        return release.stable_version.version or ""

    @admin.display(description="canary")
    def canary(self, release: CanaryRelease) -> str:
        return release.canary_version.version or ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started through the API, which checks the versions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # executions record which release routed them

    def _each(self, request: HttpRequest, queryset: QuerySet[CanaryRelease], service: Callable[..., Any]) -> None:
        for release in queryset:
            try:
                service(release=release, actor=request.user, reason=f"admin: {request.user}")
            except ApplicationError as exc:
                self.message_user(request, f"#{release.pk}: {exc.message}", messages.WARNING)
            else:
                release.refresh_from_db(fields=["state"])
                self.message_user(request, f"#{release.pk}: {release.state}", messages.SUCCESS)

    @admin.action(description="Pause the selected releases (all traffic to stable)")
    def pause(self, request: HttpRequest, queryset: QuerySet[CanaryRelease]) -> None:
        self._each(request, queryset, services.canary_pause)

    @admin.action(description="Resume the selected releases")
    def resume(self, request: HttpRequest, queryset: QuerySet[CanaryRelease]) -> None:
        self._each(request, queryset, services.canary_resume)

    @admin.action(description="Analyse the selected running releases now (and act on the verdict)")
    def analyse(self, request: HttpRequest, queryset: QuerySet[CanaryRelease]) -> None:
        for release in queryset:
            analysis = services.canary_analyse(release_id=release.pk)
            if analysis is None:
                self.message_user(request, f"#{release.pk}: not running, not analysed", messages.WARNING)
            else:
                decision = analysis.decision
                self.message_user(request, f"#{release.pk}: {decision.verdict}: {decision.reason}", messages.SUCCESS)

    @admin.action(description="Promote the selected releases (the canary becomes stable)")
    def promote(self, request: HttpRequest, queryset: QuerySet[CanaryRelease]) -> None:
        self._each(request, queryset, services.canary_promote)

    @admin.action(description="Roll back the selected releases (weight 0, all traffic to stable)")
    def rollback(self, request: HttpRequest, queryset: QuerySet[CanaryRelease]) -> None:
        self._each(request, queryset, services.canary_rollback)
