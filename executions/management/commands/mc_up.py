"""Bring MC up on one machine: server, worker (and beat), then run a workflow and print its steps.

``make demo`` calls this after ``mc_demo``. Each process runs in its own process group with
its log under ``var/log/``, so Ctrl-C in the terminal reaches only this command, which then
stops them all (SIGTERM; a worker still busy after ``--stop-timeout`` gets a cold shutdown;
SIGKILL last) and exits 0. Progress comes from polling the database, so runs started
through the API while this command runs are printed too.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from django.utils import timezone

from executions import selectors
from executions.choices import (
    CONTROL_QUEUE,
    RECEIPTS_QUEUE,
    STEP_QUEUES,
    STEP_TERMINAL,
    ExecutionMode,
    ExecutionStatus,
    StepKind,
)
from executions.models import Execution, StepRun
from executions.services import execution_create
from mc_project.errors import ApplicationError
from mc_project.tenancy.models import Tenant
from workflows.management.commands.mc_demo import DEMO_TENANT, DEMO_USER, EXAMPLE
from workflows.manifest import ManifestError, parse_manifest
from workflows.models import Workflow

QUEUES = ",".join((*STEP_QUEUES, CONTROL_QUEUE, RECEIPTS_QUEUE))
POLL_SECONDS = 0.2


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while waiting."""


@dataclass
class Child:
    """One process this command started, in its own process group, logging to a file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            self.argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the children
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; True if it has."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill_group(self) -> None:
        """SIGKILL the process and whatever it started (its pool). Only while it is unreaped,
        so the group id cannot have been reused."""
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


@dataclass
class Followed:
    """An execution whose steps are printed as they finish."""

    execution: Execution
    label: str
    width: int
    printed: set[int] = field(default_factory=set)


class Follower:
    """Prints every run started since ``since`` and each of its steps as it finishes, by polling the DB."""

    def __init__(self, write: Any, style: Any, since: Any) -> None:
        self.write = write
        self.style = style
        self.since = since
        self.known: set[uuid.UUID] = set()
        self.open: dict[uuid.UUID, Followed] = {}

    def poll(self) -> list[Execution]:
        """Print what happened since the last poll; return the executions that finished."""
        self._discover()
        finished = []
        for followed in list(self.open.values()):
            execution = Execution.objects.get(pk=followed.execution.pk)  # status before steps: none missed
            self._print_steps(followed)
            if execution.is_terminal:
                self._print_end(followed, execution)
                del self.open[execution.pk]
                finished.append(execution)
        return finished

    def _discover(self) -> None:
        new = (
            Execution.objects.filter(created_at__gte=self.since, mode=ExecutionMode.RUN)
            .exclude(pk__in=self.known)
            .select_related("workflow", "workflow_version")
            .order_by("created_at")
        )
        for execution in new:
            self.known.add(execution.pk)
            steps = selectors.step_list(execution=execution).exclude(kind=StepKind.SHARD)
            width = max((len(step_id) for step_id in steps.values_list("step_id", flat=True)), default=8) + 2
            label = f"{execution.workflow.name}@{execution.workflow_version.version}"
            self.open[execution.pk] = Followed(execution, label, width)
            inputs = json.dumps(execution.inputs, ensure_ascii=False, sort_keys=True)
            self.write(f"[{_short_id(execution)}] {label} started, inputs {inputs}")

    def _print_steps(self, followed: Followed) -> None:
        steps = (
            selectors.step_list(execution=followed.execution)
            .exclude(kind=StepKind.SHARD)
            .filter(status__in=STEP_TERMINAL)
            .exclude(pk__in=followed.printed)
            .order_by("finished_at", "sequence")
        )
        for step in steps:
            followed.printed.add(step.pk)
            self.write(f"[{_short_id(followed.execution)}]   {self._step_line(step, followed.width)}")

    def _step_line(self, step: StepRun, width: int) -> str:
        label = step.step_id if step.kind == StepKind.STEP else f"{step.step_id}:{step.kind}"
        status = _styled(self.style, step.status, f"{step.status:<9}")
        seconds = (step.finished_at - step.started_at).total_seconds() if step.started_at and step.finished_at else None
        duration = f"{seconds:7.2f} s" if seconds is not None else "      - s"
        attempts = f" ({step.attempt} attempts)" if step.attempt > 1 else ""
        if step.error:
            detail = f"error: {step.error.get('message', step.error.get('code', ''))}"
        elif "pii" in step.data_classes:
            detail = "outputs redacted (pii)"
        elif step.outputs_ref:
            detail = f"outputs in artifact {step.outputs_ref}"
        else:
            detail = _short_outputs(step.outputs)
        return f"{label:<{width}}{status} {duration}{attempts}  {detail}".rstrip()

    def _print_end(self, followed: Followed, execution: Execution) -> None:
        start, end = execution.started_at, execution.finished_at
        seconds = (end - start).total_seconds() if start and end else 0.0
        steps = f"{execution.steps_total} step{'s' if execution.steps_total != 1 else ''}"
        line = f"{followed.label} {execution.status} in {seconds:.2f} s ({steps})"
        if execution.error:
            step = execution.error.get("step")
            line += f": {f'step {step}: ' if step else ''}{execution.error.get('message', '')}"
        self.write(f"[{_short_id(execution)}] {_styled(self.style, execution.status, line)}")


def _example_name() -> str:
    """The name of the workflow in docs/examples/hello.yaml, which ``mc_demo`` publishes."""
    try:
        return str(parse_manifest(EXAMPLE.read_bytes())["name"])
    except (OSError, ManifestError, KeyError) as exc:
        raise CommandError(f"Cannot read the example workflow {EXAMPLE}: {exc}") from exc


def _short_id(execution: Execution) -> str:
    return str(execution.pk)[:8]


_STATUS_STYLES = {"succeeded": "SUCCESS", "failed": "ERROR", "skipped": "WARNING", "cancelled": "WARNING"}


def _styled(style: Any, status: str, text: str) -> str:
    """Colour by status (steps and executions share these names); plain when not a terminal."""
    name = _STATUS_STYLES.get(str(status))
    return str(getattr(style, name)(text)) if name else text


def _short_outputs(outputs: Any, width: int = 80) -> str:
    if not outputs:
        return ""
    if isinstance(outputs, dict):
        text = " ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in outputs.items())
    else:
        text = json.dumps(outputs, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


class Command(BaseCommand):
    help = (
        "Start the dev server and a Celery worker (and beat) on the configured database and broker, "
        "run a workflow and print each step as it finishes; Ctrl-C stops everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the server listens.")
        parser.add_argument(
            "--once", action="store_true", help="Run the workflow, stop everything, exit 1 unless it succeeded."
        )
        parser.add_argument("--workflow", help="Demo workflow to run (default: docs/examples/hello.yaml's).")
        parser.add_argument("--inputs", default="{}", help="Inputs of the run, as a JSON object.")
        parser.add_argument("--no-run", action="store_true", help="Only start the processes; run nothing.")
        parser.add_argument("--no-server", action="store_true", help="Do not start the dev server.")
        parser.add_argument("--beat", action="store_true", help="Also start Celery beat (executions.recover_stalled).")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker pool processes (default 2).")
        parser.add_argument("--timeout", type=float, default=300, help="With --once: seconds to wait for the run.")
        parser.add_argument("--stop-timeout", type=float, default=20, help="Seconds a process gets to stop.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"].rstrip("/")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise CommandError(f"--url must be http://host:port, got {url!r}")
        try:
            inputs = json.loads(options["inputs"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--inputs is not JSON: {exc}") from exc
        if not isinstance(inputs, dict):
            raise CommandError("--inputs must be a JSON object")
        if options["once"] and options["no_run"]:
            raise CommandError("--once runs a workflow; it cannot be combined with --no-run")
        workflow = None if options["no_run"] else self._workflow(options["workflow"])
        # Metrics of earlier demo processes that are gone start from zero.
        from mc_project.metrics import dead_process_files_remove

        dead_process_files_remove(settings.METRICS_DIR)
        self.url = url
        self.stopping = threading.Event()
        self.force = False
        self.children = self._children(options, parts.hostname, parts.port or 80)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._run(options, parts.hostname, parts.port or 80, workflow, inputs)
        finally:
            self._stop(options["stop_timeout"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- processes ----------------------------------------------------------------------

    def _children(self, options: dict[str, Any], host: str, port: int) -> list[Child]:
        log_dir = Path(settings.VAR_DIR) / "log"
        celery = [sys.executable, "-m", "celery", "-A", "mc_project"]
        # -E: task events from the start, so Flower shows every step of the demo.
        worker = [
            *celery,
            "worker",
            "-Q",
            QUEUES,
            "-c",
            str(options["concurrency"]),
            "-n",
            "mc-up@%h",
            "-E",
            "-l",
            "INFO",
        ]
        children = [Child("worker", worker, log_dir / "worker.log")]
        if options["beat"]:
            schedule = str(Path(settings.VAR_DIR) / "celerybeat-schedule")
            children.append(Child("beat", [*celery, "beat", "-l", "INFO", "-s", schedule], log_dir / "beat.log"))
        if not options["no_server"]:
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            server = [sys.executable, manage, "runserver", "--noreload", f"{host}:{port}"]
            children.append(Child("server", server, log_dir / "server.log"))
        return children

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            self.force = True  # a second Ctrl-C: do not wait for running steps
        self.stopping.set()

    def _run(self, options: dict[str, Any], host: str, port: int, workflow: Workflow | None, inputs: Any) -> None:
        since = timezone.now()
        for child in self.children:
            child.start()
        try:
            self._wait_ready(host, port)
            self._say(self._started_message())
            follower = Follower(self._say, self.style, since)
            if workflow is not None:
                execution = self._start(workflow, inputs)
                self._follow_until(follower, execution, options["timeout"] if options["once"] else None)
                if options["once"]:
                    return
            self._say(self._serving_message(workflow))
            while not self.stopping.is_set():
                self._check_children()
                follower.poll()
                self.stopping.wait(POLL_SECONDS)
        except Stopped:
            if options["once"]:
                raise CommandError("Interrupted before the run finished.") from None

    def _wait_ready(self, host: str, port: int, timeout: float = 60) -> None:
        """Wait for the worker's " ready." and the server's /healthz; fail if either dies."""
        deadline = time.monotonic() + timeout
        pending = {child.name for child in self.children}
        while pending:
            self._check_children()
            if self.stopping.is_set():
                raise Stopped
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in self.children if c.name in pending)
                raise CommandError(f"{', '.join(sorted(pending))} did not start in {timeout:.0f} s:\n{tails}")
            for child in self.children:
                if child.name in pending and self._ready(child, host, port):
                    pending.discard(child.name)
            self.stopping.wait(0.1)

    def _ready(self, child: Child, host: str, port: int) -> bool:
        if child.name == "worker":
            return " ready." in child.log_text()
        if child.name == "beat":
            return "beat: Starting" in child.log_text()
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive and not self.stopping.is_set():
                raise CommandError(
                    f"The {child.name} exited (code {child.process.returncode if child.process else '?'}); "
                    f"its log {child.log_path}:\n{child.log_tail()}"
                )

    def _stop(self, timeout: float) -> None:
        """SIGTERM (warm shutdown: running steps finish), then a cold shutdown, then SIGKILL."""
        running = [child for child in self.children if child.alive]
        if running:
            self._say(f"Stopping {', '.join(child.name for child in running)} ...")
        for child in running:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            while not child.wait(0.2):
                if self.force or time.monotonic() > deadline:
                    break
        for child in running:
            if child.alive and child.name == "worker":
                # Cold shutdown: running steps are cancelled and their messages given back.
                child.signal(signal.SIGQUIT)
                child.wait(5)
            if child.alive:
                self._say(f"The {child.name} did not stop in time; killing it.")
                child.kill_group()
        for child in self.children:
            child.close()
        if running:
            self._say("Stopped.")

    # --- the run ----------------------------------------------------------------------

    def _workflow(self, name: str | None) -> Workflow:
        name = name or _example_name()
        workflow = Workflow.objects.filter(tenant__slug=DEMO_TENANT, name=name).first()
        if workflow is None:
            raise CommandError(f"The demo tenant has no workflow {name!r}: run `manage.py mc_demo` first.")
        return workflow

    def _start(self, workflow: Workflow, inputs: dict[str, Any]) -> Execution:
        tenant = Tenant.objects.get(slug=DEMO_TENANT)
        user = User.objects.filter(username=DEMO_USER).first()
        try:
            execution, _ = execution_create(tenant=tenant, actor=user, workflow=workflow, inputs=inputs)
        except ApplicationError as exc:
            raise CommandError(f"Cannot start {workflow.name}: {exc.message}") from exc
        return execution

    def _follow_until(self, follower: Follower, execution: Execution, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check_children()
            if any(done.pk == execution.pk for done in follower.poll()):
                break
            if self.stopping.is_set():
                raise Stopped
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"Execution {execution.pk} did not finish in {timeout:.0f} s.")
            self.stopping.wait(POLL_SECONDS)
        execution.refresh_from_db()
        self._say(self._result_message(execution))
        if timeout is not None and execution.status != ExecutionStatus.SUCCEEDED:
            raise CommandError(f"Execution {execution.pk} {execution.status}.")

    # --- messages ---------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _started_message(self) -> str:
        up = [f"worker on {QUEUES}", *(["beat"] if any(c.name == "beat" for c in self.children) else [])]
        if not self._no_server:
            up.append(f"server on {self.url}")
        logs = "\n".join(f"  {child.name + ' log':<12}{child.log_path}" for child in self.children)
        return f"\nUp: {', '.join(up)}.\n{logs}\n"

    @property
    def _no_server(self) -> bool:
        return not any(child.name == "server" for child in self.children)

    def _result_message(self, execution: Execution) -> str:
        base = self.url
        admin = reverse("admin:executions_execution_change", args=[execution.pk])
        return "\n".join(
            [
                "",
                f"  Execution   {base}/api/executions/{execution.pk}",
                f"  Steps       {base}/api/executions/{execution.pk}/steps",
                f"  Logs        {base}/api/executions/{execution.pk}/logs",
                f"  Admin       {base}{admin}",
                "",
            ]
        )

    def _serving_message(self, workflow: Workflow | None) -> str:
        name = workflow.name if workflow is not None else _example_name()
        token_file = Path(settings.VAR_DIR) / "demo_token"
        token = token_file.read_text().strip() if token_file.exists() else "<token>"
        body = json.dumps({"workflow": name, "inputs": {"name": "you"}})
        names = " and the ".join(child.name for child in self.children)
        where = "Running" if self._no_server else f"Serving on {self.url}"
        return "\n".join(
            [
                "Start another run (its steps print here as they finish):",
                f"  export MAESTRO_URL={self.url} MAESTRO_TOKEN={token}",
                '  curl -s -X POST -H "Authorization: Token $MAESTRO_TOKEN" -H "Content-Type: application/json" \\',
                f"       -d '{body}' $MAESTRO_URL/api/executions",
                "",
                f"{where}. Ctrl-C stops the {names}.",
                "",
            ]
        )
