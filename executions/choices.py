"""Statuses, kinds and modes of executions and step runs, with their legal transitions."""

from __future__ import annotations

from django.db import models


class ExecutionMode(models.TextChoices):
    RUN = "run", "Run"
    DRY_RUN = "dry_run", "Dry run"


class ExecutionStatus(models.TextChoices):
    PLANNED = "planned", "Planned (dry run)"
    RUNNING = "running", "Running"
    FAILING = "failing", "Failing (waiting for running steps)"
    CANCELLING = "cancelling", "Cancelling"
    COMPENSATING = "compensating", "Compensating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class StepKind(models.TextChoices):
    STEP = "step", "Step"
    SHARD = "shard", "Matrix shard"
    COMPENSATION = "compensation", "Compensation"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending (waiting for needs)"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Waiting to retry"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


ES = ExecutionStatus
SS = StepStatus

EXECUTION_TERMINAL = frozenset({ES.PLANNED, ES.SUCCEEDED, ES.FAILED, ES.CANCELLED})
STEP_TERMINAL = frozenset({SS.SUCCEEDED, SS.FAILED, SS.SKIPPED, SS.CANCELLED})
STEP_NOT_STARTED = frozenset({SS.PENDING, SS.QUEUED, SS.RETRYING})

EXECUTION_TRANSITIONS: dict[str, frozenset[str]] = {
    ES.RUNNING: frozenset({ES.SUCCEEDED, ES.FAILING, ES.CANCELLING, ES.COMPENSATING, ES.FAILED, ES.CANCELLED}),
    ES.FAILING: frozenset({ES.CANCELLING, ES.COMPENSATING, ES.FAILED}),
    ES.CANCELLING: frozenset({ES.COMPENSATING, ES.CANCELLED}),
    ES.COMPENSATING: frozenset({ES.FAILED, ES.CANCELLED}),
    ES.PLANNED: frozenset(),
    ES.SUCCEEDED: frozenset(),
    ES.FAILED: frozenset(),
    ES.CANCELLED: frozenset(),
}

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    SS.PENDING: frozenset({SS.QUEUED, SS.RUNNING, SS.SKIPPED, SS.CANCELLED}),
    SS.QUEUED: frozenset({SS.RUNNING, SS.SKIPPED, SS.CANCELLED, SS.FAILED}),
    # running -> running: a redelivered message after its worker was lost starts a new attempt.
    SS.RUNNING: frozenset({SS.RUNNING, SS.SUCCEEDED, SS.FAILED, SS.RETRYING, SS.CANCELLED}),
    SS.RETRYING: frozenset({SS.RUNNING, SS.SKIPPED, SS.CANCELLED, SS.FAILED}),
    SS.SUCCEEDED: frozenset(),
    SS.FAILED: frozenset(),
    SS.SKIPPED: frozenset(),
    SS.CANCELLED: frozenset(),
}

QUEUE_PREFIX = "mc."
CONTROL_QUEUE = "mc.control"
# Signing receipts, off the steps' and the bookkeeping's way.
RECEIPTS_QUEUE = "mc.receipts"
RESOURCE_CLASSES = ("small", "medium", "large")
STEP_QUEUES = tuple(QUEUE_PREFIX + rc for rc in RESOURCE_CLASSES)
# A worker lost mid-step (killed, OOM) does not use up a retry, but a step that keeps
# killing its worker is failed after this many redeliveries.
MAX_LOST_ATTEMPTS = 3
