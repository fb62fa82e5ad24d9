"""The Celery application of Maestro Conductor.

Configuration comes from Django settings (``CELERY_*``), which read ``MC_*`` variables.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mc_project.settings")

app = Celery("mc_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
