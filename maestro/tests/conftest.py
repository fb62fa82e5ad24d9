"""Fixtures of the CLI tests: an isolated configuration, and the CLI run in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from maestro.cli import app

MAESTRO = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "maestro"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the user's config, or inherits MAESTRO_URL / MAESTRO_TOKEN."""
    path = tmp_path / "config" / "maestro.json"
    monkeypatch.setenv("MAESTRO_CONFIG", str(path))
    monkeypatch.delenv("MAESTRO_URL", raising=False)
    monkeypatch.delenv("MAESTRO_TOKEN", raising=False)
    return path


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("plan", "--local", "-m", path, env={...})``: run maestro in-process."""
    runner = CliRunner()

    def run(*args: Any, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        return runner.invoke(app, [str(arg) for arg in args], env=env, input=input, catch_exceptions=False)

    return run
