"""Messages of the engine: step tasks sent after commit, and what waits when the broker refuses.

The lowest room of the engine: every other module sends through here. A step whose
message the broker refused is marked ``send_pending`` (a transactional outbox) and sent by
the recovery beat (executions/services/recovery.py) once the broker takes messages again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import chord, signature
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from executions.choices import StepStatus
from executions.models import StepRun
from mc_project.celery import app as celery_app

logger = logging.getLogger(__name__)

RUN_STEP = "executions.run_step"
RUN_SHARD = "executions.run_shard"
JOIN_SHARDS = "executions.join_shards"


@dataclass(frozen=True)
class Message:
    """What is needed to send one step's task after commit."""

    pk: int
    queue: str
    timeout_seconds: int
    countdown: float | None = None
    priority: int = 0
    tenant_id: Any = None
    resource_class: str = ""
    """With both, the worker claims the step in one round trip (claims.step_claim)."""

    def kwargs(self) -> dict[str, Any]:
        if self.tenant_id is None or not self.resource_class:
            return {}
        return {"tenant": str(self.tenant_id), "resource_class": self.resource_class}

    @property
    def task_id(self) -> str:
        return f"mc-step-{self.pk}"

    def options(self) -> dict[str, Any]:
        grace = settings.MC_STEP_TIMEOUT_GRACE
        options: dict[str, Any] = {
            "task_id": self.task_id,
            # Nobody waits for a step's result: without this, the sender subscribes to the
            # result backend per message (and, with Redis down, retries that for 20 s).
            "ignore_result": True,
            "queue": self.queue,
            "soft_time_limit": self.timeout_seconds,
            "time_limit": self.timeout_seconds + grace,
        }
        if self.countdown:
            options["countdown"] = self.countdown
        if self.priority:
            options["priority"] = self.priority
        return options


def message_for(step: StepRun, countdown: float | None = None, tenant_id: Any = None) -> Message:
    return Message(step.pk, step.queue, step.timeout_seconds, countdown, step.priority, tenant_id, step.resource_class)


def publish_steps(messages: Sequence[Message]) -> list[Message]:
    """Send step tasks now (call after commit), sharing one producer connection; return those not sent.

    A broker that is down refuses within about a second (``CELERY_TASK_PUBLISH_RETRY_POLICY``).
    """
    app = celery_app
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for message in messages:
                args, kwargs = [message.pk], message.kwargs()
                try:
                    app.send_task(RUN_STEP, args=args, kwargs=kwargs, producer=producer, **message.options())
                except SoftTimeLimitExceeded:  # the sending step's own limit struck: this message still goes
                    app.send_task(RUN_STEP, args=args, kwargs=kwargs, producer=producer, **message.options())
                sent += 1
    except Exception as exc:  # the broker is down or unreachable: the rest wait to be sent
        logger.warning("broker refused %d step messages (%s: %s)", len(messages) - sent, type(exc).__name__, exc)
        return list(messages[sent:])
    return []


def send_steps(messages: Sequence[Message]) -> None:
    """Send step tasks now (call after commit); those the broker refuses wait to be sent.

    A step whose message could not be sent is marked ``send_pending``: the recovery beat
    sends it as soon as the broker takes messages again (a transactional outbox). The
    caller's transaction has committed: nothing that happened is undone.
    """
    if messages:
        _hold_unsent([message.pk for message in publish_steps(messages)])


def send_chord(parent_pk: int, shards: Sequence[Message]) -> None:
    """Run a matrix task's shards as a Celery chord joined by ``join_shards`` on mc.control.

    If the broker refuses, the shards wait to be sent (as ``send_steps``).
    """
    try:
        publish_chord(parent_pk, shards)
    except Exception as exc:  # the broker is down or unreachable
        logger.warning("broker refused the shards of step %s (%s: %s)", parent_pk, type(exc).__name__, exc)
        _hold_unsent([message.pk for message in shards])


def publish_chord(parent_pk: int, shards: Sequence[Message]) -> None:
    header = [
        signature(
            RUN_SHARD, args=[m.pk], kwargs=m.kwargs(), options={**m.options(), "ignore_result": False}, app=celery_app
        )
        for m in shards
    ]
    callback = signature(JOIN_SHARDS, args=[parent_pk], options={"queue": "mc.control"}, app=celery_app)
    chord(header, app=celery_app)(callback)


def _hold_unsent(step_pks: list[int]) -> None:
    """Mark steps whose message was not sent; if the database is down too, recovery finds them unseen."""
    if not step_pks:
        return
    try:
        StepRun.objects.filter(pk__in=step_pks, status__in=[StepStatus.QUEUED, StepStatus.RETRYING]).update(
            send_pending=True
        )
    except Exception:
        logger.warning("could not mark %d steps as waiting to be sent", len(step_pks), exc_info=True)


def after_commit_robust(action: Callable[[], Any], what: str) -> None:
    """Run a broker call after commit; if the broker refuses, log it: the recovery beat does it later."""

    def run() -> None:
        try:
            action()
        except Exception as exc:
            logger.warning("%s postponed: broker unavailable (%s: %s)", what, type(exc).__name__, exc)

    transaction.on_commit(run)


def join_if_settled(parent_pk: int) -> None:
    """Join a matrix task without waiting for its chord (used when a shard hit a hard time limit)."""
    after_commit_robust(
        lambda: celery_app.send_task(JOIN_SHARDS, args=[parent_pk], queue="mc.control", ignore_result=True),
        f"joining step {parent_pk}",
    )
