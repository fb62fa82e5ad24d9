"""The manifest error family: one base class with a machine code and HTTP status.

The Django side renders any ``ManifestError`` as ``{code, message, details}``
where ``details`` is ``[problem.as_dict() for problem in error.problems]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .constants import (
    CODE_INVALID,
    CODE_SYNTAX,
    CODE_TOO_LARGE,
    STATUS_BAD_REQUEST,
    STATUS_TOO_LARGE,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest.

    ``path`` is a JSON pointer (RFC 6901) to the offending value, or to the
    unknown key itself; ``""`` is the document root.
    """

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """Return the ``{path, message}`` shape used in API error details."""
        return {"path": self.path, "message": self.message}


class ManifestError(Exception):
    """Base of every error raised for a bad manifest (a 4xx, never a 500)."""

    code = "manifest_error"
    status = STATUS_BAD_REQUEST

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems)

    def __str__(self) -> str:
        return self.message


class ManifestTooLarge(ManifestError):
    """The upload, or the manifest's canonical form, is over MAX_MANIFEST_BYTES."""

    code = CODE_TOO_LARGE
    status = STATUS_TOO_LARGE


class ManifestSyntaxError(ManifestError):
    """The bytes are not one safe, well-formed YAML or JSON document.

    ``line`` and ``column`` are 1-based when the parser knows where it stopped;
    the message names them too.
    """

    code = CODE_SYNTAX
    status = STATUS_BAD_REQUEST

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class ManifestInvalid(ManifestError):
    """The document parsed but breaks the schema or a semantic rule.

    ``problems`` holds every problem found, not just the first.
    """

    code = CODE_INVALID
    status = STATUS_BAD_REQUEST

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = list(problems)
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"the manifest has {count} {noun}", problems)
