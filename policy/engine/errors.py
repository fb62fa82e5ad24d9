"""Errors of the policy engine."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle that cannot be loaded; ``file``/``line``/``column`` point at the fault when known."""

    def __init__(self, message: str, file: str = "", line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if not self.file:
            return self.message
        if not self.line:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyEvalError(Exception):
    """An evaluation that produced no usable result (error, undefined, wrong shape, timeout)."""
