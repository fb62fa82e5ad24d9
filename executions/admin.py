"""Operator screens for executions: steps inline, cancel and retry as actions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from executions import services
from executions.models import Execution, StepRun, WorkerHeartbeat
from mc_project.errors import ApplicationError

_STEP_FIELDS = (
    "step_id",
    "kind",
    "shard_index",
    "status",
    "queue",
    "attempt",
    "max_attempts",
    "worker",
    "quota_held_since",
    "started_at",
    "finished_at",
    "output_digest",
    "error",
)


class StepRunInline(admin.TabularInline):
    model = StepRun
    fields = readonly_fields = _STEP_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("kind", "sequence", "shard_index")
    max_num = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[StepRun]:
        return super().get_queryset(request).exclude(kind="shard")


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "workflow", "version", "mode", "status", "tenant", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "mode", "tenant"]
    search_fields = ["id", "workflow__name", "idempotency_key"]
    list_select_related = ["workflow", "workflow_version", "tenant", "created_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Execution._meta.fields]
    inlines = [StepRunInline]
    actions = ["cancel", "retry"]

    @admin.display(description="version")
    def version(self, execution: Execution) -> str:
        return execution.workflow_version.version or ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started through the API, which checks inputs and policy

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Cancel the selected executions")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        for execution in queryset:
            try:
                services.execution_cancel(execution=execution)
            except ApplicationError as exc:
                self.message_user(request, f"{execution.pk}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{execution.pk}: cancelling", messages.SUCCESS)

    @admin.action(description="Run the selected executions again (same version and inputs)")
    def retry(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        for execution in queryset.select_related("workflow", "workflow_version", "tenant"):
            try:
                new = services.execution_retry(execution=execution, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{execution.pk}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{execution.pk}: started {new.pk}", messages.SUCCESS)


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ["step_id", "kind", "shard_index", "execution", "status", "queue", "attempt", "worker", "started_at"]
    list_filter = ["status", "kind", "queue", "send_pending", ("quota_held_since", admin.EmptyFieldListFilter)]
    search_fields = ["step_id", "execution__id", "uses"]
    list_select_related = ["execution"]
    readonly_fields = [field.name for field in StepRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """The workers MC has heard from: what each runs and holds, and whether it still beats."""

    list_display = ["hostname", "state", "queue_list", "pool_size", "running", "held_count", "seen_at", "up_since"]
    search_fields = ["hostname"]
    readonly_fields = [field.name for field in WorkerHeartbeat._meta.fields]

    @admin.display(description="state")
    def state(self, beat: WorkerHeartbeat) -> str:
        silent = (timezone.now() - beat.seen_at).total_seconds()
        if silent > settings.MC_WORKER_LOST_AFTER:
            return f"lost (silent {silent:.0f} s)"
        return "alive" if silent <= 3 * settings.MC_WORKER_HEARTBEAT_INTERVAL else f"late ({silent:.0f} s)"

    @admin.display(description="queues")
    def queue_list(self, beat: WorkerHeartbeat) -> str:
        return ", ".join(beat.queues)

    @admin.display(description="pool")
    def pool_size(self, beat: WorkerHeartbeat) -> int:
        return len(beat.pool_pids)

    @admin.display(description="running")
    def running(self, beat: WorkerHeartbeat) -> int:
        return len(beat.active)

    @admin.display(description="held")
    def held_count(self, beat: WorkerHeartbeat) -> int:
        return len(beat.held)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
