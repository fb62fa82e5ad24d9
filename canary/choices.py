"""States, strategies and arms of canary releases, with their legal transitions and defaults."""

from __future__ import annotations

from django.db import models


class CanaryState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused (all traffic to stable)"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"


class CanaryStrategy(models.TextChoices):
    CANARY = "canary", "Canary (a share of traffic)"
    BLUE_GREEN = "blue_green", "Blue/green (all traffic at once)"


class Arm(models.TextChoices):
    STABLE = "stable", "Stable"
    CANARY = "canary", "Canary"


class CanaryEventKind(models.TextChoices):
    STARTED = "started", "Started"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    STEPPED = "stepped", "Weight stepped up"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"


class Trigger(models.TextChoices):
    """Who or what changed a release."""

    MANUAL = "manual", "By hand (API, admin or command)"
    WEBHOOK = "webhook", "The breach webhook"
    ANALYSIS = "analysis", "Canary analysis"


class Verdict(models.TextChoices):
    HOLD = "hold", "Hold"
    STEP = "step", "Step the weight up"
    PROMOTE = "promote", "Promote"
    ROLLBACK = "rollback", "Roll back"


CS = CanaryState

# The event a move to each state records.
EVENT_OF_STATE: dict[str, str] = {
    CS.RUNNING: CanaryEventKind.RESUMED,
    CS.PAUSED: CanaryEventKind.PAUSED,
    CS.PROMOTED: CanaryEventKind.PROMOTED,
    CS.ROLLED_BACK: CanaryEventKind.ROLLED_BACK,
}

# At most one release per workflow is in one of these (a database constraint).
ACTIVE_STATES = frozenset({CS.RUNNING, CS.PAUSED})
ENDED_STATES = frozenset({CS.PROMOTED, CS.ROLLED_BACK})

CANARY_TRANSITIONS: dict[str, frozenset[str]] = {
    CS.RUNNING: frozenset({CS.PAUSED, CS.PROMOTED, CS.ROLLED_BACK}),
    CS.PAUSED: frozenset({CS.RUNNING, CS.PROMOTED, CS.ROLLED_BACK}),
    CS.PROMOTED: frozenset(),
    CS.ROLLED_BACK: frozenset(),
}

# Defaults from the sprint plan's helm values (canary.weight 10, error_rate 1.0,
# p95_latency_ms 900, errorBudgetMinutes 30).
DEFAULT_WEIGHT = {CanaryStrategy.CANARY: 10, CanaryStrategy.BLUE_GREEN: 100}
DEFAULT_MAX_ERROR_RATE_PCT = 1.0
DEFAULT_MAX_P95_MS = 900
DEFAULT_MIN_SAMPLE = 20
DEFAULT_ANALYSIS_WINDOW_S = 600
DEFAULT_ERROR_BUDGET_MINUTES = 30

# Analysis: the percentile the latency budget is held to.
LATENCY_PERCENTILE = 0.95
# How long an ended release still shows in the canary gauges of /metrics.
ENDED_VISIBLE_S = 3600

# The webhook: the signature covers "<timestamp>.<body>"; older timestamps are refused.
WEBHOOK_SIGNATURE_HEADER = "X-MC-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-MC-Timestamp"
WEBHOOK_TOLERANCE_S = 300
