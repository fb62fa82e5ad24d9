"""Recovering lost work: MC finds it from what it knows and sends it again within a minute.

Run by the beat every ``MC_RECOVERY_INTERVAL`` seconds (``executions.recover_stalled``),
whatever the broker's visibility timeout (docs/reliability.md):

- steps waiting to be sent (the broker refused their message): sent now;
- running steps whose attempt is lost: its worker has been silent for
  ``MC_WORKER_LOST_AFTER``, or its live worker no longer lists it, and no message for it
  waits in the broker. Sent again: the claim records the attempt as lost and starts a new one;
- queued or retrying steps that no worker holds and no broker queue holds after
  ``MC_UNSEEN_AFTER`` (a broker restarted without persistence, a worker killed with
  messages prefetched). Sent again;
- matrix tasks whose shards all finished but whose chord never joined: joined;
- steps held for a quota slot while slots are free: offered again;
- steps waiting at a lower priority for ``MC_PRIORITY_AGING``: sent again at the top.

Sending again is always safe: the claim on the row lets one attempt run, and a message
that finds its attempt alive is dropped.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from executions.choices import STEP_TERMINAL, StepKind, StepStatus
from executions.models import StepRun
from executions.planner import CRITICAL_PRIORITY
from executions.services.dispatch import shards_join
from executions.services.liveness import Liveness, liveness_read
from executions.services.messages import Message, message_for, publish_chord, publish_steps
from executions.services.quotas import quota_release_all
from mc_project import metrics
from mc_project.celery import app as celery_app

logger = logging.getLogger(__name__)

_WAITING = (StepStatus.QUEUED, StepStatus.RETRYING)
_FIELDS = (
    "id",
    "kind",
    "parent_id",
    "status",
    "queue",
    "timeout_seconds",
    "worker",
    "worker_pid",
    "attempt_started_at",
    "queued_at",
    "next_attempt_at",
    "priority",
)


def stalled_steps_recover(*, observer: str | None = None) -> int:
    """Send lost work again; return how many steps were sent or joined.

    ``observer`` is the node name of the worker running this (None for a direct call):
    it judges other workers lost only after watching for ``MC_WORKER_LOST_AFTER`` itself.
    """
    live = liveness_read(observer=observer)
    done = _unsent_send()
    done += _lost_attempts_send(live)
    done += _unseen_send(live)
    done += _aged_promote(live)
    done += _settled_matrix_join()
    done += quota_release_all()  # should a worker have died between freeing a slot and offering it
    return done


def _unsent_send() -> int:
    """The outbox relay: send the steps whose message the broker refused, and clear their mark."""
    steps = list(StepRun.objects.filter(send_pending=True).only(*_FIELDS))
    waiting = [step for step in steps if step.status in _WAITING]
    sent = _send(waiting)
    StepRun.objects.filter(pk__in=[step.pk for step in steps if step.pk in sent or step.status not in _WAITING]).update(
        send_pending=False
    )
    if sent:
        logger.info("sent %d steps that were waiting to be sent", len(sent))
        metrics.STEPS_RECOVERED.labels(reason="unsent").inc(len(sent))
    return len(sent)


def _lost_attempts_send(live: Liveness) -> int:
    """Running steps whose attempt no live worker holds and for which no message waits."""
    now = timezone.now()
    running = StepRun.objects.filter(status=StepStatus.RUNNING).exclude(kind=StepKind.STEP, matrix__isnull=False)
    lost = []
    for step in running.only(*_FIELDS):
        if _overdue(step, now) or not live.holds(step):
            lost.append(step)
    if not lost:
        return 0
    held = live.held_task_ids()
    waiting = broker_waiting({step.queue for step in lost})
    resend = []
    for step in lost:
        if step.task_id in held:
            continue  # its next message (a retry, a handed-on outcome) is with a live worker
        if waiting is None:
            # A broker MC cannot look into may hold its handed-on outcome: only a lost worker counts.
            if not (live.lost(step.worker) or _overdue(step, now)):
                continue
        elif step.task_id in waiting:
            continue
        resend.append(step)
    sent = _send(resend)
    if sent:
        logger.warning("sent %d steps again whose attempt was lost with its worker", len(sent))
        metrics.STEPS_RECOVERED.labels(reason="lost").inc(len(sent))
    return len(sent)


def _overdue(step: StepRun, now: datetime) -> bool:
    """Running past its hard time limit by a minute: its worker would have stopped it, so it is gone."""
    started = step.attempt_started_at
    limit = timedelta(seconds=step.timeout_seconds + settings.MC_STEP_TIMEOUT_GRACE + 60)
    return started is not None and started < now - limit


def _unseen_send(live: Liveness) -> int:
    """Queued or retrying steps that neither a live worker nor a broker queue holds."""
    now = timezone.now()
    candidates = list(
        StepRun.objects.filter(
            status__in=_WAITING,
            queued_at__lt=now - timedelta(seconds=settings.MC_UNSEEN_AFTER),
            quota_held_since__isnull=True,  # a step in a quota's line waits for an offer
            send_pending=False,
        ).only(*_FIELDS)
    )
    if not candidates:
        return 0
    held = live.held_task_ids()
    candidates = [step for step in candidates if step.task_id not in held]
    waiting = broker_waiting({step.queue for step in candidates}) if candidates else set()
    if waiting is None:  # a broker MC cannot look into: wait for its own redelivery, then send again
        margin = timedelta(seconds=settings.MC_BROKER_VISIBILITY_TIMEOUT + 60)
        unseen = [step for step in candidates if step.queued_at is not None and step.queued_at < now - margin]
    else:
        unseen = [step for step in candidates if step.task_id not in waiting]
    sent = _send(unseen)
    if sent:
        logger.warning("sent %d queued steps again that no worker or broker queue held", len(sent))
        metrics.STEPS_RECOVERED.labels(reason="unseen").inc(len(sent))
    return len(sent)


def _aged_promote(live: Liveness) -> int:
    """Steps waiting at a lower priority for ``MC_PRIORITY_AGING``: sent again at the top.

    Critical steps of busy runs go first; aging bounds how long anyone else waits behind
    them. The message already queued stays: whichever comes first runs, the other finds the
    step claimed and is dropped.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.MC_PRIORITY_AGING)
    aged = StepRun.objects.filter(
        status=StepStatus.QUEUED,
        priority__gt=CRITICAL_PRIORITY,
        queued_at__lt=cutoff,
        quota_held_since__isnull=True,
        send_pending=False,
    )
    held = live.held_task_ids()
    steps = [step for step in aged.only(*_FIELDS) if step.task_id not in held]
    if not steps:
        return 0
    StepRun.objects.filter(pk__in=[step.pk for step in steps]).update(priority=CRITICAL_PRIORITY)
    for step in steps:
        step.priority = CRITICAL_PRIORITY
    sent = _send(steps)
    if sent:
        metrics.STEPS_RECOVERED.labels(reason="aged").inc(len(sent))
    return len(sent)


def _settled_matrix_join() -> int:
    """Matrix tasks whose shards have all finished a while ago but were never joined (a lost chord)."""
    quiet = timezone.now() - timedelta(seconds=settings.MC_UNSEEN_AFTER)
    parents = StepRun.objects.filter(kind=StepKind.STEP, matrix__isnull=False, status=StepStatus.RUNNING)
    rows = (
        StepRun.objects.filter(kind=StepKind.SHARD, parent__in=parents)
        .values("parent_id")
        .annotate(open=Count("id", filter=~Q(status__in=STEP_TERMINAL)), last=Max("finished_at"))
        .order_by()
    )
    settled = [row["parent_id"] for row in rows if row["open"] == 0 and row["last"] and row["last"] < quiet]
    for parent_pk in settled:
        shards_join(parent_pk)
    if settled:
        logger.warning("joined %d matrix tasks whose chord never did", len(settled))
        metrics.STEPS_RECOVERED.labels(reason="joined").inc(len(settled))
    return len(settled)


def _send(steps: Iterable[StepRun]) -> set[int]:
    """Send steps (shards as a chord per matrix task, joined on mc.control); the pks sent."""
    now = timezone.now()
    plain: list[Message] = []
    shards: dict[int, list[Message]] = defaultdict(list)
    for step in steps:
        countdown = None
        if step.status == StepStatus.RETRYING and step.next_attempt_at and step.next_attempt_at > now:
            countdown = (step.next_attempt_at - now).total_seconds()
        message = message_for(step, countdown)
        if step.kind == StepKind.SHARD and step.parent_id is not None:
            shards[step.parent_id].append(message)
        else:
            plain.append(message)
    unsent = {message.pk for message in publish_steps(plain)} if plain else set()
    sent = {message.pk for message in plain} - unsent
    for parent_pk, messages in shards.items():
        try:
            publish_chord(parent_pk, messages)
        except Exception as exc:
            logger.warning("could not send the shards of step %s (%s: %s)", parent_pk, type(exc).__name__, exc)
            continue
        sent.update(message.pk for message in messages)
    return sent


def broker_waiting(queues: Iterable[str]) -> set[str] | None:
    """Task ids of the messages waiting in ``queues``; None for a broker MC cannot look into.

    On Redis a queue is a list per priority: read them whole (only when some step is
    suspected lost). Messages a worker took are not there: ask the heartbeats for those.
    """
    if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://", "redis+socket://")):
        return None
    found: set[str] = set()
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        prefix = getattr(channel, "global_keyprefix", "") or ""
        for queue in sorted(set(queues)):
            for priority in channel.priority_steps:
                key = prefix + channel._q_for_pri(queue, priority)
                for raw in channel.client.lrange(key, 0, -1):
                    try:
                        found.add(json.loads(raw)["headers"]["id"])
                    except (ValueError, KeyError, TypeError):
                        continue
    return found
