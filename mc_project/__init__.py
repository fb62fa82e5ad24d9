"""Maestro Conductor's Django project: settings, URLs, Celery app, errors, tenancy."""

from mc_project.celery import app as celery_app

__all__ = ["celery_app"]
