"""``--wait``: follow an execution until it ends, live on a terminal, in plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from maestro.client import Api

POLL_SECONDS = 0.5


def _summary(progress: dict[str, Any]) -> str:
    """``2/4 steps done, running: shout, wait, 3.1 s``."""
    parts = [f"{progress['steps_done']}/{progress['steps_total']} steps done"]
    if progress["running"]:
        parts.append("running: " + ", ".join(progress["running"]))
    if progress.get("elapsed_seconds") is not None:
        parts.append(f"{progress['elapsed_seconds']:.1f} s")
    return ", ".join(parts)


def _poll(
    api: Api, execution_id: str, show: Callable[[dict[str, Any]], None], interval: float, *, every: bool = False
) -> dict[str, Any]:
    """Poll /progress until the execution is terminal; ``show`` each new state (each poll if ``every``)."""
    seen: tuple[Any, ...] | None = None
    while True:
        progress = api.get(f"/api/executions/{execution_id}/progress")
        state = (progress["status"], progress["steps_done"], tuple(progress["running"]))
        if every or state != seen:
            seen = state
            show(progress)
        if progress["terminal"]:
            return progress
        time.sleep(interval)


def execution_follow(api: Api, execution_id: str, *, interval: float = POLL_SECONDS, quiet: bool = False) -> None:
    """Wait for the execution to end, showing progress unless ``quiet`` (json mode)."""
    short = execution_id[:8]
    if quiet:
        _poll(api, execution_id, lambda _: None, interval)
        return
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        _poll(api, execution_id, lambda p: print(f"[{short}] {p['status']}: {_summary(p)}", flush=True), interval)
        return
    with Live(Text(f"[{short}] starting"), console=console, transient=True, refresh_per_second=8) as live:

        def show(progress: dict[str, Any]) -> None:
            line = f"[bold]{short}[/bold] {escape(progress['status'])}: {escape(_summary(progress))}"
            live.update(Text.from_markup(line))

        _poll(api, execution_id, show, interval, every=True)
