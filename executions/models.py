"""Executions of published workflow versions and the runs of their steps."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from canary.choices import Arm
from executions.choices import EXECUTION_TERMINAL, ExecutionMode, ExecutionStatus, StepKind, StepStatus
from mc_project.tenancy.models import Tenant


class Execution(models.Model):
    """One run (or dry run) of a published workflow version.

    ``steps_remaining`` counts step rows that are not finished yet; the transaction that
    takes it to zero settles the execution, so exactly one worker does. An idempotency
    key is unique per tenant; ``request_digest`` tells a repeat of the same request from a
    different request reusing the key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="executions")
    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.PROTECT, related_name="executions")
    workflow_version = models.ForeignKey(
        "workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="executions"
    )
    mode = models.CharField(max_length=16, choices=ExecutionMode.choices, default=ExecutionMode.RUN)
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.RUNNING)
    region = models.CharField(max_length=32, blank=True, default="", help_text="where the run was asked to run")
    inputs = models.JSONField(default=dict)
    inputs_digest = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_digest = models.CharField(max_length=64)
    plan = models.JSONField(default=dict)
    estimated_usd = models.FloatField(default=0, help_text="the plan's estimate, summed for daily spend")
    steps_total = models.PositiveIntegerField(default=0)
    steps_remaining = models.IntegerField(default=0)
    error = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Unpinned executions routed by a canary release: which release, and which of its arms.
    canary_release = models.ForeignKey(
        "canary.CanaryRelease", on_delete=models.PROTECT, null=True, blank=True, related_name="executions"
    )
    arm = models.CharField(max_length=8, choices=Arm.choices, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="execution_tenant_recent"),
            models.Index(fields=["workflow", "status"], name="execution_workflow_status"),
            # The budget pack's spend today, read at every execute: answered from the index alone.
            models.Index(
                fields=["tenant", "mode", "created_at"], include=["estimated_usd"], name="execution_tenant_spend"
            ),
            # Canary analysis: an arm's runs that finished within the window.
            models.Index(
                fields=["canary_release", "arm", "finished_at"],
                condition=Q(canary_release__isnull=False),
                name="execution_canary_arm",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="execution_idempotency_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in EXECUTION_TERMINAL


class StepRun(models.Model):
    """One step of an execution: a task of the manifest, a matrix shard of one, or a compensation.

    The row carries what a worker needs (rendered nothing yet: ``with_template`` holds
    the task's ``with`` with its expressions) so that running a step never re-reads the
    manifest. ``attempts`` lists every attempt with its worker, times and outcome.
    """

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=63)
    kind = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.STEP)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    shard_index = models.PositiveIntegerField(default=0)
    matrix = models.JSONField(
        null=True, blank=True, help_text="a matrix task: its shard combinations; a shard: its values"
    )
    max_parallel = models.PositiveIntegerField(null=True, blank=True, help_text="a matrix task: most shards at once")
    sequence = models.PositiveIntegerField(default=0, help_text="manifest order; compensation order")
    uses = models.CharField(max_length=200)
    with_template = models.JSONField(default=dict)
    needs = models.JSONField(default=list)
    compensate = models.JSONField(null=True, blank=True, help_text="the task's compensate block")
    dependents = models.JSONField(default=list)
    queue = models.CharField(max_length=32)
    resource_class = models.CharField(max_length=16)
    timeout_seconds = models.PositiveIntegerField()
    max_attempts = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    needs_pending = models.IntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="attempts started")
    lost_attempts = models.PositiveSmallIntegerField(default=0)
    attempts = models.JSONField(default=list)
    worker = models.CharField(max_length=255, blank=True, default="")
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    input_digest = models.CharField(max_length=64, blank=True, default="")
    output_digest = models.CharField(max_length=64, blank=True, default="")
    outputs = models.JSONField(null=True, blank=True)
    outputs_ref = models.CharField(max_length=80, blank=True, default="", help_text="artifact holding large outputs")
    error = models.JSONField(null=True, blank=True)
    log = models.TextField(blank=True, default="")
    data_classes = models.JSONField(
        default=list, blank=True, help_text="the task's and its package's data classes; pii is redacted from logs"
    )
    quota_held_since = models.DateTimeField(
        null=True, blank=True, help_text="waiting in line for a slot of its tenant's concurrency quota since"
    )
    quota_released_at = models.DateTimeField(
        null=True, blank=True, help_text="a freed slot was offered to this held step (message sent) at"
    )
    quota_waited_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="how long the current attempt waited in line for a quota slot"
    )
    priority = models.PositiveSmallIntegerField(
        default=0, help_text="broker priority, 0 first: 0 on the run's critical path, 3 with slack (raised by aging)"
    )
    send_pending = models.BooleanField(
        default=False, help_text="waiting to be sent: the broker did not take its message; the recovery beat sends it"
    )

    class Meta:
        ordering = ["execution", "kind", "sequence", "shard_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "kind", "step_id", "shard_index"], name="steprun_unique_per_execution"
            ),
        ]
        indexes = [
            models.Index(fields=["execution", "status"], name="steprun_execution_status"),
            models.Index(fields=["status", "resource_class"], name="steprun_status_class"),
            models.Index(
                fields=["resource_class", "quota_held_since", "id"],
                condition=Q(quota_held_since__isnull=False),
                name="steprun_quota_line",
            ),
            models.Index(fields=["id"], condition=Q(send_pending=True), name="steprun_send_pending"),
        ]

    def __str__(self) -> str:
        suffix = f"[{self.shard_index}]" if self.kind == StepKind.SHARD else ""
        return f"{self.step_id}{suffix} ({self.status})"

    @property
    def task_id(self) -> str:
        """The Celery task id of every message for this step: redeliveries and retries reuse it."""
        return f"mc-step-{self.pk}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one Celery worker, written by the worker every few seconds.

    MC finds lost work from these rows (executions/services/recovery.py): a worker silent
    for ``MC_WORKER_LOST_AFTER`` is lost with its attempts, and a step is held by a worker
    only if that worker's last heartbeat lists its task. ``up_since`` is when the current
    unbroken run of heartbeats began: after an outage of the database every worker starts
    a new one, and nobody is judged until they have had time to report again.
    """

    hostname = models.CharField(max_length=255, primary_key=True, help_text="the worker's node name")
    pid = models.PositiveIntegerField(help_text="the worker's main process")
    queues = models.JSONField(default=list)
    pool_pids = models.JSONField(default=list, help_text="pids of the pool processes")
    active = models.JSONField(default=list, help_text="[task id, pool pid] of each task running")
    held = models.JSONField(default=list, help_text="task ids received and not finished (running, prefetched, delayed)")
    started_at = models.DateTimeField(help_text="when the worker started")
    up_since = models.DateTimeField(help_text="start of the current unbroken run of heartbeats")
    seen_at = models.DateTimeField(help_text="the last heartbeat (database time)")

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname
