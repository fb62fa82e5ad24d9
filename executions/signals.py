"""Signals of the execution engine.

``execution_finished`` is sent when a run reaches its final status (succeeded, failed or
cancelled), inside the transaction that records it, with ``execution`` (the locked row:
its bookkeeping fields). Receivers that start work elsewhere should do so on commit.
"""

from __future__ import annotations

from django.dispatch import Signal

execution_finished = Signal()
