"""Template tags of the operator console: the admin index's overview, highlighted YAML, a diff."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from executions.overview import console_overview

register = template.Library()


@register.inclusion_tag("admin/executions/overview.html")
def mc_overview() -> dict[str, Any]:
    return {"overview": console_overview()}


_KEY = re.compile(r"^(\s*-?\s*)([A-Za-z0-9_.$-]+)(:)(.*)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _value(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return escape(text)
    if stripped.startswith("#"):
        return f'<span class="c">{escape(text)}</span>'
    if _NUMBER.match(stripped) or stripped in ("true", "false", "null"):
        return f'<span class="n">{escape(text)}</span>'
    return f'<span class="s">{escape(text)}</span>'


@register.filter
def yaml_highlight(text: str) -> SafeString:
    """YAML with keys, strings, numbers and comments marked for CSS (everything escaped)."""
    out = []
    for line in str(text).splitlines():
        match = _KEY.match(line)
        if match:
            lead, key, colon, rest = match.groups()
            out.append(f'{escape(lead)}<span class="k">{escape(key)}</span>{colon}{_value(rest)}')
        elif line.lstrip().startswith("- "):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{escape(indent)}- {_value(line.lstrip()[2:])}")
        else:
            out.append(_value(line))
    return mark_safe("\n".join(out))  # noqa: S308 - every piece above is escaped


@register.simple_tag
def unified_diff(old: str, new: str, old_name: str, new_name: str) -> SafeString:
    """A unified diff of two texts, each line escaped and classed (add, del, hunk)."""
    lines = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm=""):
        css = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else ""
        )
        lines.append(f'<span class="{css}">{escape(line)}</span>' if css else escape(line))
    return mark_safe("\n".join(lines) or "(no difference)")  # noqa: S308 - escaped above
