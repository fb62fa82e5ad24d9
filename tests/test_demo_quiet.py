"""The embedded default starts without avoidable warnings (SQLite's models.W040, kombu's hostname)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_sqlite_checks_print_no_covering_index_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MC_") and k != "DJANGO_SETTINGS_MODULE"}
    env["MC_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "W040" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_filesystem_broker_asks_for_no_hostname(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from kombu import Connection

    import mc_project.celery  # noqa: F401 - registers the filesystem transport alias

    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder}
    with (
        caplog.at_level(logging.WARNING, logger="kombu.connection"),
        Connection("filesystem://", transport_options=options) as connection,
    ):
        connection.info()
    assert "No hostname was supplied" not in caplog.text
