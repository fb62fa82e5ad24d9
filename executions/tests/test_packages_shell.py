"""pkg:mc/shell@1 runs real programs: no shell, a temp dir, a bare environment, limits that bite."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from executions.packages import InputInvalid, PackageSettings, StepContext, StepFailed
from executions.packages.builtin_shell import ShellPackage

MIB = 1024 * 1024


class NoArtifacts:
    def put(self, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        raise AssertionError("mc/shell stores no artifacts")


def run(with_: dict[str, Any], *, timeout: int = 30, settings: PackageSettings | None = None) -> dict[str, Any]:
    lines: list[str] = []
    ctx = StepContext(
        execution_id="e-1",
        step_id="sh",
        attempt=1,
        resource_class="small",
        timeout_seconds=timeout,
        log=lines.append,
        artifacts=NoArtifacts(),
        settings=settings or PackageSettings(),
    )
    return ShellPackage().run(ctx, with_)


def limits(cpu_seconds: int = 60, memory: int = 512 * MIB) -> PackageSettings:
    return PackageSettings(shell_limits={"small": (cpu_seconds, memory)})


def test_arguments_are_not_interpreted_by_a_shell() -> None:
    outputs = run({"argv": ["echo", "; rm -rf /", "$(id)", "`id`", "&&", "|"]})

    assert outputs == {"exit_code": 0, "stdout": "; rm -rf / $(id) `id` && |\n", "stderr": "", "truncated": False}


def test_a_canary_survives_arguments_that_would_delete_it_in_a_shell(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("alive")

    run({"argv": ["echo", f"x; rm -f {canary}"]})
    run({"argv": ["echo", f"$(rm -f {canary})"]})
    with pytest.raises(StepFailed):  # `ls` is asked to list a file called "&&"
        run({"argv": ["ls", "&&", "rm", "-f", str(canary)]})

    assert canary.read_text() == "alive"


def test_the_program_runs_in_a_fresh_temporary_directory_removed_afterwards() -> None:
    first = run({"argv": ["pwd"]})["stdout"].strip()
    second = run({"argv": ["pwd"]})["stdout"].strip()

    assert first != second
    assert first != os.getcwd()
    assert os.path.basename(first).startswith("mc-shell-")
    assert not os.path.exists(first)


def test_the_environment_is_minimal_plus_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_SECRET_KEY", "do-not-leak")

    outputs = run({"argv": ["env"], "env": {"GREETING": "hi there"}})

    env = dict(line.split("=", 1) for line in outputs["stdout"].splitlines())
    assert env.pop("PATH") == "/usr/bin:/bin"
    assert env.pop("LANG") == "C.UTF-8"
    assert env.pop("GREETING") == "hi there"
    home = env.pop("HOME")
    assert os.path.dirname(home) == tempfile.gettempdir()
    assert os.path.basename(home).startswith("mc-shell-")
    assert env == {}


def test_stdin_is_closed() -> None:
    assert run({"argv": ["cat"]})["stdout"] == ""


def test_non_zero_exit_is_a_retryable_failure_with_the_end_of_stderr() -> None:
    with pytest.raises(StepFailed) as caught:
        run({"argv": ["sh", "-c", "echo progress; echo 'disk full' >&2; exit 3"]})

    assert caught.value.retryable is True
    assert caught.value.message == "exited with code 3: disk full"


def test_an_unknown_program_is_invalid_input() -> None:
    with pytest.raises(InputInvalid, match="program 'no-such-program-mc' not found"):
        run({"argv": ["no-such-program-mc"]})


def test_a_directory_is_not_a_program() -> None:
    with pytest.raises(InputInvalid):
        run({"argv": ["/tmp"]})


@pytest.mark.parametrize(
    ("with_", "path"),
    [
        ({"argv": []}, "/argv"),
        ({"argv": "echo hi"}, "/argv"),
        ({"argv": ["echo", 1]}, "/argv/1"),
        ({"argv": ["pwd"], "cwd": "/"}, "/cwd"),
        ({"argv": ["pwd"], "env": {"A-B": "x"}}, "/env/A-B"),
        ({"argv": ["pwd"], "env": {"A": 1}}, "/env/A"),
        ({"argv": ["pwd"], "timeout_seconds": 0}, "/timeout_seconds"),
    ],
)
def test_bad_input_is_reported_at_its_path(with_: dict[str, Any], path: str) -> None:
    assert path in [p.path for p in ShellPackage().check_input(with_)]
    with pytest.raises(InputInvalid):
        run(with_)


def test_a_timeout_kills_the_program_and_is_retryable() -> None:
    started = time.monotonic()

    with pytest.raises(StepFailed, match="timed out after 1 s") as caught:
        run({"argv": ["sleep", "30"], "timeout_seconds": 1})

    assert caught.value.retryable is True
    assert time.monotonic() - started < 10


def test_the_step_timeout_caps_the_requested_timeout() -> None:
    with pytest.raises(StepFailed, match="timed out after 1 s"):
        run({"argv": ["sleep", "30"], "timeout_seconds": 600}, timeout=1)


def test_background_children_do_not_keep_the_step_alive() -> None:
    started = time.monotonic()

    outputs = run({"argv": ["sh", "-c", "sleep 30 & echo started"]})

    assert outputs["stdout"] == "started\n"
    assert time.monotonic() - started < 10


def test_a_program_that_closes_its_output_still_times_out() -> None:
    started = time.monotonic()

    with pytest.raises(StepFailed, match="timed out after 1 s"):
        run({"argv": ["sh", "-c", "exec >&- 2>&-; sleep 30"], "timeout_seconds": 1})

    assert time.monotonic() - started < 10


def test_output_is_capped_per_stream_and_flagged() -> None:
    settings = PackageSettings(shell_output_limit=1000)
    program = "import sys; sys.stdout.write('x' * 100000); sys.stderr.write('e' * 10)"

    outputs = run({"argv": ["python3", "-c", program]}, settings=settings)

    assert outputs["stdout"] == "x" * 1000
    assert outputs["stderr"] == "e" * 10
    assert outputs["truncated"] is True


def test_undecodable_output_is_replaced_not_fatal() -> None:
    outputs = run({"argv": ["printf", "caf\\351"]})

    assert outputs["stdout"] == "caf\ufffd"


def test_the_memory_limit_stops_a_program_that_allocates_too_much() -> None:
    allocate = "x = bytearray(1024 * 1024 * 1024); print('allocated')"

    with pytest.raises(StepFailed, match="MemoryError"):
        run({"argv": ["python3", "-c", allocate]}, settings=limits(memory=256 * MIB))

    # The same limit leaves room for a modest allocation.
    small = "x = bytearray(16 * 1024 * 1024); print('allocated')"
    assert run({"argv": ["python3", "-c", small]}, settings=limits(memory=256 * MIB))["stdout"] == "allocated\n"


def test_the_cpu_limit_stops_a_busy_program() -> None:
    started = time.monotonic()

    with pytest.raises(StepFailed, match="SIGXCPU: over the CPU limit of 1 s") as caught:
        run({"argv": ["python3", "-c", "while True: pass"]}, settings=limits(cpu_seconds=1))

    assert caught.value.retryable is True
    assert time.monotonic() - started < 10


def test_limits_follow_the_resource_class() -> None:
    assert PackageSettings().shell_limits == {
        "small": (60, 512 * MIB),
        "medium": (600, 2048 * MIB),
        "large": (3600, 8192 * MIB),
    }
