"""``--wait``: follow an execution until it ends, live on a terminal, in plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from maestro.client import Api, path_segment
from maestro.errors import Failed, MaestroError, Unreachable

POLL_SECONDS = 0.5
#: How long ``--wait`` keeps polling through transient errors (no answer, 502/503/504) before giving up.
TRANSIENT_BUDGET_SECONDS = 60.0
_TRANSIENT_CODES = {"unreachable", "service_unavailable", "http_502", "http_503", "http_504", "bad_gateway"}


class Deadline:
    """``--timeout``: when waiting must stop (never, without one)."""

    def __init__(self, seconds: float | None, execution_id: str = "") -> None:
        self.seconds = seconds
        self.execution_id = execution_id
        self.at = None if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        if self.at is not None and self.seconds is not None and time.monotonic() > self.at:
            raise Failed(
                f"{self.execution_id[:8]} is still running after {self.seconds:g} s (--timeout); "
                "it goes on on the server",
                code="wait_timeout",
            )


def _transient(error: MaestroError) -> bool:
    return error.code in _TRANSIENT_CODES or (isinstance(error, Unreachable) and error.code == "unreachable")


def patient_get(api: Api, path: str, *, deadline: Deadline | None = None, text: bool = False) -> Any:
    """GET ``path``, retrying transient failures (no answer, 503) with backoff for up to a minute."""
    waited, delay = 0.0, 0.5
    while True:
        try:
            return api.request("GET", path).text if text else api.get(path)
        except MaestroError as error:
            if not _transient(error) or waited >= TRANSIENT_BUDGET_SECONDS:
                raise
            print(f"  ({error.message}; retrying in {delay:g} s)", file=sys.stderr, flush=True)
        except httpx.HTTPError:
            if waited >= TRANSIENT_BUDGET_SECONDS:
                raise
        if deadline is not None:
            deadline.check()
        time.sleep(delay)
        waited += delay
        delay = min(delay * 2, 5.0)


def _summary(progress: dict[str, Any]) -> str:
    """``2/4 steps done (1 skipped), running: shout, wait, 3.1 s``: skipped and cancelled steps are not "done"."""
    counts = progress.get("steps") or {}
    finished = {name: counts.get(name, 0) for name in ("succeeded", "failed", "skipped", "cancelled")}
    done = finished["succeeded"] + finished["failed"] if counts else progress["steps_done"]
    parts = [f"{done}/{progress['steps_total']} steps done"]
    others = [f"{finished[name]} {name}" for name in ("failed", "skipped", "cancelled") if finished[name]]
    if others:
        parts[0] += " (" + ", ".join(others) + ")"
    if progress["running"]:
        parts.append("running: " + ", ".join(progress["running"]))
    if progress.get("elapsed_seconds") is not None:
        parts.append(f"{progress['elapsed_seconds']:.1f} s")
    return ", ".join(parts)


def _poll(
    api: Api,
    execution_id: str,
    show: Callable[[dict[str, Any]], None],
    interval: float,
    *,
    every: bool = False,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Poll /progress until the execution is terminal; ``show`` each new state (each poll if ``every``)."""
    seen: tuple[Any, ...] | None = None
    while True:
        if deadline is not None:
            deadline.check()
        progress = patient_get(api, f"/api/executions/{execution_id}/progress", deadline=deadline)
        state = (progress["status"], progress["steps_done"], tuple(progress["running"]))
        if every or state != seen:
            seen = state
            show(progress)
        if progress["terminal"]:
            return progress
        time.sleep(interval)


def execution_follow(
    api: Api,
    execution_id: str,
    *,
    interval: float = POLL_SECONDS,
    quiet: bool = False,
    deadline: Deadline | None = None,
) -> None:
    """Wait for the execution to end, showing progress unless ``quiet`` (json mode)."""
    short = execution_id[:8]
    if quiet:
        _poll(api, execution_id, lambda _: None, interval, deadline=deadline)
        return
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        _poll(
            api,
            execution_id,
            lambda p: print(f"[{short}] {p['status']}: {_summary(p)}", flush=True),
            interval,
            deadline=deadline,
        )
        return
    with Live(Text(f"[{short}] starting"), console=console, transient=True, refresh_per_second=8) as live:

        def show(progress: dict[str, Any]) -> None:
            line = f"[bold]{short}[/bold] {escape(progress['status'])}: {escape(_summary(progress))}"
            live.update(Text.from_markup(line))

        _poll(api, execution_id, show, interval, every=True, deadline=deadline)


class LogTail:
    """What of a log was printed already: new lines of each step are printed once, in order.

    The execution's log lists steps in manifest order (``step | line``), so a step's new
    lines appear in the middle of the text: each step's lines are counted apart.
    """

    def __init__(self) -> None:
        self.printed: dict[str, int] = {}

    def new_lines(self, text: str, *, prefixed: bool) -> list[str]:
        seen: dict[str, int] = {}
        fresh = []
        for line in text.splitlines():
            label = line.split(" | ", 1)[0] if prefixed else ""
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > self.printed.get(label, 0):
                fresh.append(line)
        for label, count in seen.items():
            self.printed[label] = max(self.printed.get(label, 0), count)
        return fresh


def logs_follow(
    api: Api,
    execution_id: str,
    step: str | None = None,
    *,
    interval: float = POLL_SECONDS,
    deadline: Deadline | None = None,
    query: str = "",
) -> dict[str, Any]:
    """Print the logs as they grow until the execution ends; its last progress."""
    base = f"/api/executions/{path_segment(execution_id)}"
    path = (f"{base}/steps/{path_segment(step)}/logs" if step else f"{base}/logs") + query
    tail = LogTail()
    while True:
        if deadline is not None:
            deadline.check()
        progress = patient_get(api, f"{base}/progress", deadline=deadline)
        for line in tail.new_lines(patient_get(api, path, deadline=deadline, text=True), prefixed=step is None):
            print(line, flush=True)
        if progress["terminal"]:
            return dict(progress)
        time.sleep(interval)
