"""Writes of the executions app: create and start executions, run steps, cancel."""

from executions.services.create import (
    execution_create,
    execution_retry,
    manifest_plan,
    plan_checked,
    plan_for,
    request_digest,
    version_for_run,
)
from executions.services.dispatch import execution_cancel, shards_join
from executions.services.recovery import stalled_steps_recover
from executions.services.runner import step_execute, step_hard_timeout

__all__ = [
    "execution_cancel",
    "execution_create",
    "execution_retry",
    "manifest_plan",
    "plan_checked",
    "plan_for",
    "request_digest",
    "shards_join",
    "stalled_steps_recover",
    "step_execute",
    "step_hard_timeout",
    "version_for_run",
]
