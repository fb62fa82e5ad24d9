"""Packs, modes, results and stages of policy decisions."""

from __future__ import annotations

from django.db import models

PACKS = ("residency", "pii", "budget", "quotas")
# Packs that need only the manifest, evaluated when a version is published.
STATIC_PACKS = ("residency", "pii")


class PolicyMode(models.TextChoices):
    ENFORCE = "enforce", "Enforce (a deny blocks)"
    ADVISORY = "advisory", "Advisory (explain only)"


class DecisionResult(models.TextChoices):
    ALLOW = "allow", "Allow"
    WARN = "warn", "Allow with warnings"
    DENY = "deny", "Deny"


class DecisionStage(models.TextChoices):
    PUBLISH = "publish", "Publish"
    PLAN = "plan", "Plan / dry run"
    EXECUTE = "execute", "Execute"
    DISPATCH = "dispatch", "Dispatch"
