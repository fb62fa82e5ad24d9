"""Celery tasks of the execution engine. Each takes ids and hands off to a service.

``run_step`` runs on the queue of the step's resource class (``mc.small`` ...), chosen
when it is sent; ``run_shard`` is the same for one shard of a matrix chord; the rest run
on ``mc.control``.
"""

from __future__ import annotations

from typing import Any

from billiard.exceptions import TimeLimitExceeded
from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from executions.services import shards_join, stalled_steps_recover, step_execute, step_hard_timeout
from executions.services.dispatch import RUN_STEP, Message


class StepTask(Task):
    """Late acknowledgement, redelivery when the worker is lost, retries sent by MC itself."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # MC counts attempts on the StepRun row
    typing = False
    # The database or broker went away mid-bookkeeping: try the message again.
    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = True
    retry_backoff_max = 30

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, TimeLimitExceeded):
            return
        timeout = int(self.request.timelimit[1] or 0) if self.request.timelimit else 0
        delay = step_hard_timeout(int(args[0]), timeout)
        if delay is not None:
            step_pk = int(args[0])
            queue = (self.request.delivery_info or {}).get("routing_key") or "mc.small"
            soft, hard = self.request.timelimit or (None, None)
            message = Message(step_pk, queue, int(soft or hard or 60), countdown=delay)
            self.app.send_task(RUN_STEP, args=[step_pk], **message.options())


@shared_task(base=StepTask, bind=True, name="executions.run_step", ignore_result=True)
def run_step(self: Task, step_pk: int) -> None:
    delay = step_execute(int(step_pk), worker=self.request.hostname or "")
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(base=StepTask, bind=True, name="executions.run_shard", ignore_result=False)
def run_shard(self: Task, step_pk: int) -> int:
    """A matrix shard: its (small) return value counts it in the chord; outputs live on the row."""
    delay = step_execute(int(step_pk), worker=self.request.hostname or "")
    if delay is not None:
        raise self.retry(countdown=delay)
    return int(step_pk)


@shared_task(name="executions.join_shards", acks_late=True, ignore_result=True)
def join_shards(_results: Any, parent_pk: int | None = None) -> None:
    """Chord callback (results first) or a direct call with the parent's pk only."""
    pk = parent_pk if parent_pk is not None else _results
    shards_join(int(pk))


@shared_task(name="executions.recover_stalled", ignore_result=True)
def recover_stalled() -> int:
    return stalled_steps_recover()
