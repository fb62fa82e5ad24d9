"""pkg:mc/shell@1: run one program (no shell) in a fresh temporary directory, with limits.

The argv list goes to exec as is, so ``["echo", "; rm -rf /"]`` prints that
string. The process gets a minimal environment, its own session (so a timeout
kills its children too), CPU and address-space rlimits from the resource class,
and its output is read through a cap so a chatty program cannot fill the
worker's memory.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any

from .base import InputInvalid, StepContext, StepFailed, TaskPackage, slot_costs

BASE_PATH = "/usr/bin:/bin"
_READ_SIZE = 64 * 1024
_TAIL_BYTES = 2048  # of stderr, kept for the failure message
_POLL_SECONDS = 0.25


@dataclass
class _Capture:
    """The first ``limit`` bytes of a stream, plus its last few for error messages."""

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.head)
        if len(chunk) > room:
            self.truncated = True
        self.head += chunk[: max(room, 0)]
        self.tail = (self.tail + chunk)[-_TAIL_BYTES:]

    def text(self) -> str:
        return self.head.decode("utf-8", errors="replace")


@dataclass
class _Finished:
    returncode: int
    stdout: _Capture
    stderr: _Capture
    timed_out: bool


class ShellPackage(TaskPackage):
    namespace = "mc"
    name = "shell"
    version = "1"
    description = (
        "Runs a program with arguments (no shell) in a fresh temporary directory, with CPU and memory "
        "limits by resource class and a minimal environment. A non-zero exit or a timeout is a retryable failure."
    )
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["argv"],
        "properties": {
            "argv": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4096,
                "items": {"type": "string"},
                "description": "The program and its arguments; the program is looked up on PATH=/usr/bin:/bin.",
            },
            "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
            "env": {
                "type": "object",
                "propertyNames": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
                "additionalProperties": {"type": "string"},
                "description": "Added to PATH, HOME (the temporary directory) and LANG=C.UTF-8.",
            },
        },
    }
    output_keys = ("exit_code", "stdout", "stderr", "truncated")
    side_effects = True  # a program can do anything its user can
    cost = slot_costs(2.0)
    example = """\
- id: list-files
  uses: pkg:mc/shell@1
  with:
    argv: [ls, -la, /etc]
    timeout_seconds: 30
    env:
      LC_ALL: C
  resource_class: small
"""

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/shell got invalid input", details=problems)
        argv: list[str] = list(with_["argv"])
        timeout = min(int(with_.get("timeout_seconds", ctx.timeout_seconds)), ctx.timeout_seconds)
        limits = ctx.settings.shell_limits
        cpu_seconds, memory_bytes = limits.get(ctx.resource_class) or limits["small"]
        ctx.log(f"$ {shlex.join(argv)}")
        with tempfile.TemporaryDirectory(prefix="mc-shell-") as workdir:
            env = {"PATH": BASE_PATH, "HOME": workdir, "LANG": "C.UTF-8", **with_.get("env", {})}
            process = _start(argv, workdir, env, cpu_seconds, memory_bytes)
            finished = _collect(process, ctx.settings.shell_output_limit, timeout)
        return _outcome(ctx, finished, timeout, cpu_seconds)


def _capped(kind: int, wanted: int) -> int:
    """``wanted``, but never above the worker's own hard limit (setting that would fail)."""
    _, hard = resource.getrlimit(kind)
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _start(argv: list[str], workdir: str, env: dict[str, str], cpu_seconds: int, memory_bytes: int) -> Any:
    # The hard CPU limit a second above the soft one: SIGXCPU first, SIGKILL if it is ignored.
    cpu = (_capped(resource.RLIMIT_CPU, cpu_seconds), _capped(resource.RLIMIT_CPU, cpu_seconds + 1))
    memory = (_capped(resource.RLIMIT_AS, memory_bytes),) * 2

    def apply_limits() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_CPU, cpu)
        resource.setrlimit(resource.RLIMIT_AS, memory)

    try:
        return subprocess.Popen(  # noqa: S603  argv list, shell=False: nothing is interpreted
            argv,
            shell=False,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # its own process group, killed as a whole
            preexec_fn=apply_limits,
        )
    except FileNotFoundError as error:
        raise InputInvalid(f"program {argv[0]!r} not found (PATH is {env['PATH']})") from error
    except PermissionError as error:
        raise InputInvalid(f"program {argv[0]!r} cannot be executed: permission denied") from error
    except (ValueError, OSError) as error:  # an embedded NUL, an exec format error ...
        raise InputInvalid(f"cannot run {argv[0]!r}: {error}") from error


def _kill_group(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _collect(process: Any, limit: int, timeout: float) -> _Finished:
    """Read both pipes (capped) until they close or ``timeout`` passes; reap the process.

    When the program exits, anything it left running in its group is killed, so
    a background child holding the pipes cannot keep the step alive.
    """
    deadline = time.monotonic() + timeout
    captures: dict[IO[bytes], _Capture] = {process.stdout: _Capture(limit), process.stderr: _Capture(limit)}
    timed_out = False
    try:
        with selectors.DefaultSelector() as selector:
            for pipe in captures:
                selector.register(pipe, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                    chunk = os.read(key.fd, _READ_SIZE)
                    if chunk:
                        captures[key.fileobj].add(chunk)  # type: ignore[index]
                    else:
                        selector.unregister(key.fileobj)
                if process.poll() is not None:
                    _kill_group(process)
        if not timed_out:
            try:  # the pipes can close before the program ends (it may close them itself)
                process.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        # Leftovers in the group, or the program itself after a timeout or an exception
        # in the worker (e.g. Celery's soft time limit): none may outlive the step.
        _kill_group(process)
        if process.poll() is None:
            process.wait()
        for pipe in captures:
            pipe.close()
    return _Finished(process.returncode, captures[process.stdout], captures[process.stderr], timed_out)


def _outcome(ctx: StepContext, finished: _Finished, timeout: int, cpu_seconds: int) -> dict[str, Any]:
    stdout, stderr = finished.stdout, finished.stderr
    cut = [name for name, capture in (("stdout", stdout), ("stderr", stderr)) if capture.truncated]
    if cut:
        ctx.log(f"kept the first {stdout.limit} bytes of {' and '.join(cut)}")
    if finished.timed_out:
        raise StepFailed(f"timed out after {timeout} s")
    code = finished.returncode
    ctx.log(f"exit code {code}")
    if code != 0:
        tail = stderr.tail.decode("utf-8", errors="replace").strip()[-500:]
        raise StepFailed(f"{_exit_reason(code, cpu_seconds)}" + (f": {tail}" if tail else ""), retryable=True)
    return {"exit_code": code, "stdout": stdout.text(), "stderr": stderr.text(), "truncated": bool(cut)}


def _exit_reason(code: int, cpu_seconds: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGXCPU:
        return f"killed by {name}: over the CPU limit of {cpu_seconds} s"
    return f"killed by {name}"
