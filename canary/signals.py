"""Signals of the canary app, and its receiver of finished runs (which hands off to analysis)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

# Sent after a release changes state, on commit of the transaction that changed it.
# Arguments: release (CanaryRelease), previous (str), actor (a user or None), reason (str),
# trigger (canary.choices.Trigger: manual, webhook or analysis).
canary_state_changed = Signal()


def canary_run_finished(execution: Any, **_: Any) -> None:
    """Receiver of ``execution_finished``: analyse the release once a run of its canary arm commits.

    Cancelled runs and dry runs count for no arm, and stable runs cannot breach, so only
    finished canary runs send ``canary.analyse``; the beat covers the rest.
    """
    from canary.choices import Arm
    from executions.choices import ExecutionMode, ExecutionStatus

    if execution.status == ExecutionStatus.CANCELLED or not execution.canary_release_id:
        return
    if execution.arm != Arm.CANARY or execution.mode != ExecutionMode.RUN:
        return
    release_id = execution.canary_release_id
    # robust: with the broker down, the canary.analyse_running beat analyses it instead.
    transaction.on_commit(lambda: _analyse_soon(release_id), robust=True)


def _analyse_soon(release_id: int) -> None:
    from canary.tasks import ANALYSE_TASK
    from mc_project.celery import app

    app.send_task(ANALYSE_TASK, args=[release_id], queue="mc.control", ignore_result=True)
