"""Recovering lost work: steps whose message or worker is gone are sent again."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from executions.choices import StepKind, StepStatus
from executions.models import StepRun
from executions.services.dispatch import Message, message_for, send_steps


def stalled_steps_recover() -> int:
    """Re-deliver steps whose message is gone (broker flushed, worker killed); return how many.

    - queued or retrying longer than the broker's visibility timeout: sent again;
    - running past its hard time limit by a minute: its worker would have stopped it, so
      the worker is gone (the embedded filesystem broker never redelivers). Sent again;
      the claim records the attempt as lost and runs the step anew. A shard cannot rejoin
      its chord, so it is failed and its matrix task joined;
    - held for a quota slot while slots are free: offered again (``quota_release_all``).
    Re-sending keeps the task id; a step that turns out to be alive is protected by its claim.
    """
    now = timezone.now()
    waiting_margin = timedelta(seconds=settings.MC_BROKER_VISIBILITY_TIMEOUT + 60)
    messages = [
        message_for(step)
        for step in StepRun.objects.filter(
            status__in=[StepStatus.QUEUED, StepStatus.RETRYING],
            queued_at__lt=now - waiting_margin,
            quota_held_since__isnull=True,  # a step in a quota's line waits for an offer (below)
        ).exclude(kind=StepKind.SHARD)
    ]
    shards: list[Message] = []
    running = StepRun.objects.filter(status=StepStatus.RUNNING).exclude(matrix__isnull=False, kind=StepKind.STEP)
    for step in running.only("id", "kind", "queue", "timeout_seconds", "attempt_started_at"):
        limit = step.timeout_seconds + settings.MC_STEP_TIMEOUT_GRACE + 60
        if step.attempt_started_at and step.attempt_started_at < now - timedelta(seconds=limit):
            (shards if step.kind == StepKind.SHARD else messages).append(message_for(step))
    send_steps(messages)
    for shard in shards:
        from executions.services.runner import step_hard_timeout

        step_hard_timeout(shard.pk, shard.timeout_seconds)
    from executions.services.quotas import quota_release_all

    offers = quota_release_all()  # should a worker have died between freeing a slot and offering it
    return len(messages) + len(shards) + offers
