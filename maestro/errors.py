"""The CLI's error family: each error knows its exit code (docs/cli.md, "Exit codes")."""

from __future__ import annotations

from typing import Any

#: Exit codes: 0 ok; 1 the thing asked failed (validation, execution, policy, a refused
#: request); 2 usage error (Click's own); 3 the server cannot be reached or auth failed.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class MaestroError(Exception):
    """An expected failure: printed as ``code: message`` plus details, never as a traceback.

    ``details`` has the API's shape, a list of ``{"path", "message"}`` (plus ``line`` and
    ``column`` for problems found in a local file).
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, code: str = "failed", details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []

    def as_dict(self) -> dict[str, Any]:
        """The API's error shape, so scripts read CLI and server errors alike."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Failed(MaestroError):
    """What was asked failed: invalid manifest, refused request, failed execution (exit 1)."""


class Unreachable(MaestroError):
    """No answer from the server, a broken answer, or no valid credentials (exit 3)."""

    exit_code = EXIT_UNREACHABLE
