"""How commands print: rich text for people, ``--output json`` for scripts, errors to stderr."""

from __future__ import annotations

import enum
import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from maestro.errors import MaestroError

F = TypeVar("F", bound=Callable[..., Any])


class Output(enum.StrEnum):
    text = "text"
    json = "json"


OUTPUT_OPTION = Annotated[Output, typer.Option("--output", help="text for people, json for scripts.")]


#: Width of tables when stdout is not a terminal (CI logs, pipes): wide, rather than cut.
PLAIN_WIDTH = 160


def stdout() -> Console:
    """A console on the current stdout (looked up per call: tests swap sys.stdout)."""
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = PLAIN_WIDTH
    return console


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """One JSON document on stdout (nothing else goes there in json mode)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def say(message: str) -> None:
    """A line of rich markup on stdout."""
    stdout().print(message)


def problem_line(detail: dict[str, Any]) -> str:
    """``FILE:LINE:COL: path: message`` (compiler style) or ``path: message``."""
    path = detail.get("path") or "(root)"
    if "file" in detail:
        prefix = f"{detail['file']}:{detail.get('line', 1)}:{detail.get('column', 1)}: "
        return f"{prefix}{path}: {detail['message']}" if detail.get("path") else f"{prefix}{detail['message']}"
    return f"{path}: {detail['message']}"


def error_print(error: MaestroError, *, as_json: bool) -> None:
    """The error as the API's JSON shape on stdout, or as text on stderr."""
    if as_json:
        emit_json(error.as_dict())
        return
    console = stderr()
    console.print(f"[red]error[/red]: {escape(error.message)} [dim]({error.code})[/dim]")
    for detail in error.details:
        console.print(escape(problem_line(detail)))


def handles_errors(command: F) -> F:
    """Print a MaestroError the command raised and exit with its code (no traceback)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MaestroError as error:
            error_print(error, as_json=kwargs.get("output") == Output.json)
            raise typer.Exit(error.exit_code) from error

    return run  # type: ignore[return-value]
