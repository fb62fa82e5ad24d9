"""Operator screens for executions: the run page (graph, timeline, attempts, plan, receipt,
policy decisions), a list worth scanning, and cancel, retry and verify as actions.

Executions and step runs are written by the engine only: their pages are read-only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from executions import console, services
from executions.choices import StepKind
from executions.models import Execution, StepRun, WorkerHeartbeat
from mc_project.errors import ApplicationError

# The index opens on the console's overview (executions/templatetags/mc_console.py).
admin.site.index_template = "admin/mc_index.html"

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


def status_badge(status: str, label: str | None = None) -> str:
    """A coloured status badge (the colours of the run page's graph)."""
    return format_html('<span class="mc-badge mc-{}">{}</span>', status, label or status)


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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the engine writes: viewed, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id",
        "status_badge",
        "workflow_at_version",
        "duration",
        "steps_done",
        "started",
        "canary_arm",
        "mode",
        "tenant",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "mode", "arm", "tenant"]
    search_fields = ["id", "workflow__name", "idempotency_key"]
    list_select_related = ["workflow", "workflow_version", "tenant"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Execution._meta.fields]
    inlines = [StepRunInline]
    actions = ["cancel", "retry"]

    class Media:
        css = {"all": ["executions/console.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        return (
            super()
            .get_queryset(request)
            .defer("plan", "inputs", "workflow_version__manifest", "workflow_version__canonical")
        )

    @admin.display(description="execution", ordering="id")
    def short_id(self, execution: Execution) -> str:
        return str(execution.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, execution: Execution) -> str:
        return status_badge(execution.status)

    @admin.display(description="workflow", ordering="workflow__name")
    def workflow_at_version(self, execution: Execution) -> str:
        return f"{execution.workflow.name}@{execution.workflow_version.version or 'draft'}"

    @admin.display(description="duration")
    def duration(self, execution: Execution) -> str:
        if execution.started_at is None:
            return "-"
        end = execution.finished_at or timezone.now()
        return console.seconds_ms((end - execution.started_at).total_seconds())

    @admin.display(description="steps done")
    def steps_done(self, execution: Execution) -> str:
        return f"{execution.steps_total - max(execution.steps_remaining, 0)}/{execution.steps_total}"

    @admin.display(description="started", ordering="started_at")
    def started(self, execution: Execution) -> Any:
        return execution.started_at or execution.created_at

    @admin.display(description="canary arm", ordering="arm")
    def canary_arm(self, execution: Execution) -> str:
        return execution.arm or "-"

    # --- the run page ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path("<path:object_id>/state.json", wrap(self.state_view), name="executions_execution_state"),
            path("<path:object_id>/fields/", wrap(self.fields_view), name="executions_execution_fields"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name="executions_execution_cancel"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name="executions_execution_retry"),
            path("<path:object_id>/verify/", wrap(self.verify_view), name="executions_execution_verify"),
            path("<path:object_id>/disclosure.tgz", wrap(self.disclosure_view), name="executions_execution_disclosure"),
        ]
        return own + super().get_urls()

    def _execution(self, request: HttpRequest, object_id: str) -> Execution:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(
            Execution.objects.select_related("workflow", "workflow_version", "tenant", "created_by"), pk=object_id
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The run page: everything an operator asks about one run, on one page."""
        execution = self._execution(request, object_id)
        state = console.run_state(execution)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{execution.workflow.name}@{execution.workflow_version.version} · {str(execution.pk)[:8]}",
            "execution": execution,
            "state": state,
            "state_url": reverse("admin:executions_execution_state", args=[execution.pk]),
            **run_page_context(execution, state),
        }
        state["receipt"] = receipt_state(execution, context["receipt"])
        return TemplateResponse(request, "admin/executions/execution/run.html", context)

    def fields_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Django's own read-only view of the row and its steps (and the baseline of bench_run_page)."""
        return super().change_view(request, object_id)

    def state_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """What the run page polls while the run is not finished (and its receipt while it is pending)."""
        execution = self._execution(request, object_id)
        state = console.run_state(execution)
        state["receipt"] = receipt_state(execution, receipt_verdict(execution))
        return JsonResponse(state)

    def _back(self, execution: Execution) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:executions_execution_change", args=[execution.pk]))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        execution = self._execution(request, object_id)
        if request.method == "POST":
            self.cancel(request, Execution.objects.filter(pk=execution.pk))
        return self._back(execution)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        execution = self._execution(request, object_id)
        if request.method == "POST":
            try:
                new = services.execution_retry(execution=execution, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"started {new.pk}", messages.SUCCESS)
                return self._back(new)
        return self._back(execution)

    def verify_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        execution = self._execution(request, object_id)
        if request.method == "POST":
            verdict = receipt_verdict(execution)
            if verdict is None:
                self.message_user(request, "the run has no receipt yet", messages.WARNING)
            elif verdict["ok"]:
                self.message_user(request, "receipt verified: " + verdict["summary"], messages.SUCCESS)
            else:
                self.message_user(request, "receipt does NOT verify: " + verdict["summary"], messages.ERROR)
        return self._back(execution)

    def disclosure_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from receipts.disclosure import disclosure_filename, disclosure_get

        execution = self._execution(request, object_id)
        try:
            data = disclosure_get(execution=execution)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return self._back(execution)
        response = HttpResponse(data, content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{disclosure_filename(execution)}"'
        return response

    # --- actions ----------------------------------------------------------------------

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


def receipt_verdict(execution: Execution) -> dict[str, Any] | None:
    """The run's receipt verified now: signature and key, chain link, database; None without a receipt."""
    from receipts.choices import ReceiptKind
    from receipts.models import Receipt
    from receipts.verification import receipt_verify

    receipt = Receipt.objects.filter(execution=execution, kind=ReceiptKind.EXECUTION).first()
    if receipt is None:
        return None
    verdict = receipt_verify(receipt)
    checks = [{"name": c.name, "ok": c.ok, "message": c.message} for c in verdict.checks]
    summary = "; ".join(f"{c['name']} {'ok' if c['ok'] else 'FAILED'}: {c['message']}" for c in checks)
    return {"receipt": receipt, "ok": verdict.ok, "checks": checks, "summary": summary, "signed": receipt.signed}


def receipt_state(execution: Execution, verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    """The receipt panel's content for the page's polling: signed or pending, each check's result, links."""
    if verdict is None:
        return None
    receipt = verdict["receipt"]
    return {
        "signed": verdict["signed"],
        "sequence": receipt.sequence,
        "key_id": receipt.key_id,
        "signed_at": timezone.localtime(receipt.signed_at).strftime("%Y-%m-%d %H:%M:%S") if receipt.signed_at else "",
        "ok": verdict["ok"],
        "checks": verdict["checks"],
        "url": reverse("admin:receipts_receipt_change", args=[receipt.pk]),
        "api_url": f"/api/receipts/{receipt.pk}",
        "disclosure_url": reverse("admin:executions_execution_disclosure", args=[execution.pk]),
    }


def run_page_context(execution: Execution, state: dict[str, Any]) -> dict[str, Any]:
    """The server-rendered parts of the run page: steps, details, plan, receipt, decisions."""
    from policy.models import PolicyDecision

    steps = list(
        StepRun.objects.filter(execution=execution)
        .exclude(kind=StepKind.SHARD)
        .defer("with_template", "outputs", "log")
        .order_by("kind", "sequence")
    )
    detailed_ids = (
        [s.pk for s in steps]
        if len(steps) <= console.DETAILS_INLINE
        else [s.pk for s in console.interesting_steps(steps)][: console.DETAILS_INLINE]
    )
    detailed = StepRun.objects.filter(pk__in=detailed_ids).order_by("kind", "sequence")
    plan = console.plan_tables(execution.plan or {})
    decisions = PolicyDecision.objects.filter(execution=execution).order_by("created_at")
    by_pk = {step.pk: step for step in steps}
    return {
        # the table's rows and cells as the page's polling refreshes them (console.table_steps)
        "steps": [(by_pk[cell["pk"]], cell) for cell in state["steps"] if cell["pk"] in by_pk],
        "steps_total": len(steps),
        "details": [console.step_details(step) for step in detailed],
        "details_all": len(detailed_ids) == len(steps),
        "plan": plan,
        "plan_steps": plan["steps"][: console.TABLE_ROWS],
        "receipt": receipt_verdict(execution),
        "decisions": [{"decision": d, "explanations": [*(d.deny or []), *(d.warn or [])]} for d in decisions],
        "inputs": console.pretty(execution.inputs),
        "error": console.pretty(execution.error) if execution.error else "",
        "colours": console.STATUS_COLOURS,
        "poll_ms": settings.MC_CONSOLE_POLL_MS,
    }


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = [
        "step_id",
        "kind",
        "shard_index",
        "execution",
        "status_badge",
        "queue",
        "attempt",
        "worker",
        "started_at",
    ]
    list_filter = ["status", "kind", "queue", "send_pending", ("quota_held_since", admin.EmptyFieldListFilter)]
    search_fields = ["step_id", "execution__id", "uses"]
    list_select_related = ["execution"]
    readonly_fields = [field.name for field in StepRun._meta.fields]

    class Media:
        css = {"all": ["executions/console.css"]}

    @admin.display(description="status", ordering="status")
    def status_badge(self, step: StepRun) -> str:
        return status_badge(step.status)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A step's page: attempts, inputs and outputs, digests, the log of each attempt."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        step = get_object_or_404(StepRun.objects.select_related("execution__workflow"), pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{step} of {str(step.execution_id)[:8]}",
            "detail": console.step_details(step),
            "execution": step.execution,
        }
        return TemplateResponse(request, "admin/executions/steprun/step.html", context)


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
