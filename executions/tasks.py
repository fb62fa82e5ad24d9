"""Celery tasks of the execution engine. Each takes ids and hands off to a service.

``run_step`` runs on the queue of the step's resource class (``mc.small`` ...), chosen
when it is sent; ``run_shard`` is the same for one shard of a matrix chord; the rest run
on ``mc.control``.
"""

from __future__ import annotations

from typing import Any

from billiard.exceptions import TimeLimitExceeded
from celery import Task, shared_task

from executions.services import shards_join, stalled_steps_recover, step_execute, step_hard_timeout
from executions.services.messages import RUN_STEP, Message
from executions.services.recording import DATABASE_ERRORS, HandedOff, Handoff


class StepTask(Task):
    """Late acknowledgement, redelivery when the worker is lost, retries sent by MC itself."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # MC counts attempts on the StepRun row
    typing = False
    # The database went away before the claim: nothing ran, try the message again. Once an
    # attempt is claimed, the runner waits for the database itself and never lets go of it.
    autoretry_for = DATABASE_ERRORS
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


def _handoff(task: Task, step_pk: int) -> Handoff:
    """Send the rest of this attempt as a new message of this task (same id), with a growing pause."""

    def send(kwargs: dict[str, Any]) -> BaseException:
        countdown = min(2 ** min(task.request.retries or 0, 5), 30)
        return task.retry(args=[step_pk], kwargs=kwargs, countdown=countdown, throw=False)

    return send


def _run(task: Task, step_pk: int, attempt: int | None, outcome: dict[str, Any] | None, hints: dict[str, Any]) -> None:
    try:
        delay = step_execute(
            step_pk,
            worker=task.request.hostname or "",
            attempt=attempt,
            outcome=outcome,
            handoff=_handoff(task, step_pk),
            tenant=hints.get("tenant"),
            resource_class=hints.get("resource_class") or "",
        )
    except HandedOff as handed:
        raise handed.retry from None
    if delay is not None:
        raise task.retry(args=[step_pk], kwargs=hints, countdown=delay)


@shared_task(base=StepTask, bind=True, name="executions.run_step", ignore_result=True)
def run_step(
    self: Task, step_pk: int, attempt: int | None = None, outcome: dict[str, Any] | None = None, **hints: Any
) -> None:
    """A step: a new attempt, or (``attempt``) one handed on before its package ran or (``outcome``) after.

    ``hints`` (``tenant``, ``resource_class``) let the claim take its one-round-trip path.
    """
    _run(self, int(step_pk), attempt, outcome, hints)


@shared_task(base=StepTask, bind=True, name="executions.run_shard", ignore_result=False)
def run_shard(
    self: Task, step_pk: int, attempt: int | None = None, outcome: dict[str, Any] | None = None, **hints: Any
) -> int:
    """A matrix shard: its (small) return value counts it in the chord; outputs live on the row."""
    _run(self, int(step_pk), attempt, outcome, hints)
    return int(step_pk)


@shared_task(name="executions.join_shards", acks_late=True, ignore_result=True)
def join_shards(_results: Any, parent_pk: int | None = None) -> None:
    """Chord callback (results first) or a direct call with the parent's pk only."""
    pk = parent_pk if parent_pk is not None else _results
    shards_join(int(pk))


@shared_task(bind=True, name="executions.recover_stalled", ignore_result=True)
def recover_stalled(self: Task) -> int:
    return stalled_steps_recover(observer=self.request.hostname)
