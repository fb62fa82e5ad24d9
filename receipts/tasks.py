"""Celery tasks of receipts, on the ``mc.receipts`` queue (``CELERY_TASK_ROUTES``)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from receipts.services import receipt_sign, receipts_sign_pending


@shared_task(
    name="receipts.sign",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=30,
)
def sign(receipt_id: str) -> None:
    receipt_sign(receipt_id)


@shared_task(name="receipts.sign_pending", ignore_result=True)
def sign_pending() -> int:
    return receipts_sign_pending()
