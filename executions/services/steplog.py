"""A step's log for one attempt: timestamped lines, capped, with pii values redacted before it is stored.

Each line starts with its UTC time to the millisecond (``2026-05-04T10:11:12.345Z``). A failed
attempt ends with its error: ``ERROR code: message``, the details, and for a crash the
traceback, so the log read through the API, the CLI and the disclosure bundle says why.
An attempt MC judges lost (its worker or pool process gone) gets a line saying so, with the
evidence (``attempt_lost_log``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from executions.models import StepRun

PII = "pii"
REDACTED = "[redacted: pii]"
_MIN_SECRET = 3  # shorter values ("a", "42") would blank out ordinary text
_EXPRESSION_RE = re.compile(r"\$\{\{.*?\}\}")
#: Room kept under the cap for the error of a failed attempt (its traceback is cut to fit).
_ERROR_ROOM = 2000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """``2026-05-04T10:11:12.345Z``: the prefix of every log line."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class StepLog:
    """A step's log for one attempt, capped so a chatty package cannot fill the database.

    Values of pii data (``redact``) never reach the stored log: ``text`` replaces each
    occurrence with ``[redacted: pii]``.
    """

    limit: int
    lines: list[str] = field(default_factory=list)
    size: int = 0
    truncated: bool = False
    secrets: set[str] = field(default_factory=set)
    clock: Callable[[], datetime] = _utc_now

    def redact(self, value: Any) -> None:
        """Keep every string (and number) inside ``value`` out of the log."""
        if isinstance(value, dict):
            for item in value.values():
                self.redact(item)
        elif isinstance(value, list | tuple):
            for item in value:
                self.redact(item)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value).strip()
            if len(text) >= _MIN_SECRET:
                self.secrets.add(text)

    def redact_rendered(self, template: Any, rendered: Any) -> None:
        """Keep out what expressions put into ``rendered``; the manifest's own literals stay readable."""
        if isinstance(template, dict) and isinstance(rendered, dict):
            for key, item in template.items():
                self.redact_rendered(item, rendered.get(key))
        elif isinstance(template, list) and isinstance(rendered, list) and len(template) == len(rendered):
            for item, value in zip(template, rendered, strict=True):
                self.redact_rendered(item, value)
        elif isinstance(template, str) and "${{" in template:
            if isinstance(rendered, str) and isinstance(template, str):
                for literal in _EXPRESSION_RE.split(template):  # the value minus the template's own text
                    if literal:
                        rendered = rendered.replace(literal, "\0")
                for part in rendered.split("\0"):
                    self.redact(part)
            else:
                self.redact(rendered)

    def write(self, line: str) -> None:
        """One line of what the package says, stamped with the time it said it."""
        if self.truncated:
            return
        stamped = f"{timestamp(self.clock())} {line}"
        if self.size + len(stamped) + 1 > max(self.limit - _ERROR_ROOM, self.limit // 2):
            self.lines.append(f"{timestamp(self.clock())} [log truncated]")
            self.truncated = True
            return
        self.lines.append(stamped)
        self.size += len(stamped) + 1

    def failed(self, error: Mapping[str, Any]) -> None:
        """The error that ended the attempt: code and message, its details, a crash's traceback.

        Written even after the log was truncated (room is kept for it), so every failed
        attempt's log says why it failed.
        """
        now = timestamp(self.clock())
        lines = [f"{now} ERROR {error.get('code', 'failed')}: {error.get('message', '')}"]
        for detail in error.get("details") or []:
            if isinstance(detail, Mapping):
                lines.append(f"{now}   {detail.get('path', '')}: {detail.get('message', '')}")
        trace = error.get("traceback")
        if isinstance(trace, str) and trace:
            lines.append(f"{now} Traceback of the crash:")
            lines.extend("    " + line for line in trace[-(_ERROR_ROOM - 200) :].rstrip().splitlines())
        self.lines.extend(lines)
        self.size += sum(len(line) + 1 for line in lines)

    def text(self) -> str:
        return self.scrub("\n".join(self.lines))

    def scrub(self, text: str) -> str:
        """``text`` with every pii value replaced (longest first, so none is half-redacted)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


def failure_log(error: Mapping[str, Any], limit: int) -> str:
    """The log of an attempt that wrote nothing before it failed (killed at its hard time limit)."""
    log = StepLog(limit)
    log.failed(error)
    return log.text()


def lost_evidence(step: StepRun, *, observer: str | None) -> str:
    """Why the step's current attempt counts as lost, as ``claims._attempt_alive`` judged it, in words.

    ``observer`` is the worker that received the step's message again.
    """
    # Imported here: the log's own helpers above need no Django; only a lost attempt reads the database.
    from django.conf import settings
    from django.utils import timezone

    from executions.services.liveness import liveness_read, same_worker_alive

    started = step.attempt_started_at
    if not step.worker or started is None:
        return "no worker or start was recorded for it"
    limit = step.timeout_seconds + settings.MC_STEP_TIMEOUT_GRACE
    if timezone.now() - started > timedelta(seconds=limit):
        return f"running since {timestamp(started)}, past its hard time limit of {limit} s"
    if step.worker == observer:
        if step.worker_pid == os.getpid():
            return "redelivered to the process that ran it, which no longer runs it"
        if not same_worker_alive(step.worker_pid):
            return f"pool process {step.worker_pid} of {step.worker} is gone"
    live = liveness_read(observer=observer)
    beat = live.beats.get(step.worker)
    if beat is None:
        return f"worker {step.worker} has no heartbeat"
    if beat.seen_at < live.now - timedelta(seconds=settings.MC_WORKER_LOST_AFTER):
        return f"worker {step.worker} silent since {timestamp(beat.seen_at)}"
    return f"worker {step.worker} no longer lists it (heartbeat at {timestamp(beat.seen_at)})"


def attempt_lost_log(step: StepRun, *, observer: str | None) -> None:
    """Write to ``step``'s log that its current attempt was lost, why, and which worker and pid ran it.

    Call with the step's row locked, before its next attempt starts: the line goes under the
    attempt's own header (written here if the attempt wrote nothing), and ``step.log`` is the
    new text, so the next attempt's record keeps it.
    """
    from django.conf import settings

    from executions.models import StepRun

    header = f"--- attempt {step.attempt} on {step.worker} ---"
    stamp = timestamp(_utc_now())
    line = (
        f"{stamp} ERROR worker_lost: attempt {step.attempt} was lost: {lost_evidence(step, observer=observer)}"
        f" (it ran on {step.worker or 'no worker'}, pid {step.worker_pid or '-'}); delivered again to {observer}"
    )
    parts = [step.log] if step.log else []
    if not re.search(rf"^--- attempt {step.attempt} on .* ---$", step.log or "", re.MULTILINE):
        parts.append(header)
    text = "\n".join([*parts, line])
    limit = settings.MC_STEP_LOG_LIMIT
    step.log = text if len(text) <= limit else "[earlier log truncated]\n" + text[-limit:]
    StepRun.objects.filter(pk=step.pk).update(log=step.log)
