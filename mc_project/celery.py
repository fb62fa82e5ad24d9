"""The Celery application of Maestro Conductor.

Configuration comes from Django settings (``CELERY_*``), which read ``MC_*`` variables.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mc_project.settings")

# The embedded broker (filesystem://) with kombu's exchange-table race fixed (mc_project/broker.py).
TRANSPORT_ALIASES["filesystem"] = "mc_project.broker:FilesystemTransport"

app = Celery("mc_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _worker_process_init(**_: object) -> None:
    """Pool processes skip Django's per-task connection health check (a ``SELECT 1`` per step).

    A connection that went stale fails the bookkeeping with an OperationalError, which the
    step tasks retry (``autoretry_for``); Django then opens a fresh connection.
    """
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_HEALTH_CHECKS"] = False


@task_prerun.connect
def _task_prerun(**_: object) -> None:
    """Drop a connection that broke or outlived its age before each task, as Django does per request."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


@worker_process_shutdown.connect
def _worker_process_shutdown(pid: int | None = None, **_: object) -> None:
    """A pool process exits: drop its live-gauge files (mc_project.metrics.process_exited)."""
    # Imported here: prometheus_client must not be imported before the settings are loaded.
    from mc_project.metrics import process_exited

    process_exited(pid or os.getpid())


_heartbeat = None


@worker_ready.connect
def _worker_ready(sender: object = None, **_: object) -> None:
    """Start the worker's heartbeat (executions/heartbeat.py): how MC tells a lost worker from a busy one."""
    global _heartbeat
    from executions.heartbeat import Heartbeat

    _heartbeat = Heartbeat(sender)
    _heartbeat.start()


@worker_shutdown.connect
def _worker_shutdown(**_: object) -> None:
    """The worker's main process exits (it counts too with the solo and threads pools)."""
    from mc_project.metrics import process_exited

    process_exited(os.getpid())
    if _heartbeat is not None:
        _heartbeat.stop()
