"""A step's log for one attempt: capped, and with pii values redacted before it is stored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PII = "pii"
REDACTED = "[redacted: pii]"
_MIN_SECRET = 3  # shorter values ("a", "42") would blank out ordinary text
_EXPRESSION_RE = re.compile(r"\$\{\{.*?\}\}")


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
        if self.truncated:
            return
        if self.size + len(line) + 1 > self.limit:
            self.lines.append("[log truncated]")
            self.truncated = True
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def text(self) -> str:
        return self.scrub("\n".join(self.lines))

    def scrub(self, text: str) -> str:
        """``text`` with every pii value replaced (longest first, so none is half-redacted)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text
