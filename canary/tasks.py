"""Celery tasks of canary releases, on ``mc.control``: analysis after a canary run, and its beat."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from canary.services import canary_analyse, canary_analyse_running

ANALYSE_TASK = "canary.analyse"


@shared_task(
    name=ANALYSE_TASK,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=10,
)
def analyse(release_id: int) -> None:
    canary_analyse(release_id=release_id)


@shared_task(name="canary.analyse_running", ignore_result=True)
def analyse_running() -> int:
    return canary_analyse_running()
