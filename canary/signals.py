"""Signals of the canary app: what analysis, receipts and metrics will listen to."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a release changes state, on commit of the transaction that changed it.
# Arguments: release (CanaryRelease), previous (str), actor (a user or None), reason (str).
canary_state_changed = Signal()
