"""In-process evaluation with regopy: each bundle compiled once per worker, evaluated many times.

An Interpreter is not thread-safe, and a runaway evaluation cannot be interrupted from
Python, so every evaluation runs on a worker thread that owns its interpreter and its
compiled packs. The caller waits ``timeout_s`` per pack; a worker that overruns is
abandoned (it finishes in the background and exits) and the pack fails closed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from regopy import RegoError

from . import rego
from .base import pack_name, safe_input_digest, unknown_pack
from .bundle import Bundle
from .decision import Decision, decision_from_document, policy_error
from .errors import PolicyEvalError

MAX_ABANDONED_WORKERS = 4


@dataclass(frozen=True)
class _Outcome:
    pack: str
    document: Any
    error: str | None
    duration_ms: float


class _Job:
    """Packs to evaluate on one input, and their outcomes as they come.

    The worker appends each outcome and wakes the caller once, when the last is in: a
    caller woken per pack would pay a thread switch for each. ``pack_started`` tells the
    caller how long the pack being evaluated has run, so each pack still has its own
    timeout.
    """

    def __init__(self, packs: tuple[str, ...], input: dict[str, Any]) -> None:
        self.packs = packs
        self.input = input
        self.outcomes: list[_Outcome] = []
        self.pack_started = time.monotonic()
        self.done = threading.Event()

    def add(self, outcome: _Outcome) -> None:
        self.outcomes.append(outcome)
        self.pack_started = time.monotonic()
        if len(self.outcomes) == len(self.packs):
            self.done.set()


class _Worker:
    """A thread with its own interpreter and its own compiled copy of each pack."""

    def __init__(self, engine: RegoEngine) -> None:
        self._engine = engine
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.abandoned = False
        self._thread = threading.Thread(target=self._run, name="mc-policy-rego", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interp = rego.new_interpreter()
        compiled: dict[str, Any] = {}
        while (job := self.jobs.get()) is not None:
            self._run_job(job, interp, compiled)
        if self.abandoned:
            self._engine._abandoned_finished()

    def _run_job(self, job: _Job, interp: Any, compiled: dict[str, Any]) -> None:
        started = time.perf_counter()
        try:
            rego.set_input(interp, job.input)
        except (RegoError, PolicyEvalError, ValueError) as exc:
            for pack in job.packs:
                job.add(_Outcome(pack, None, f"the input cannot be evaluated: {exc}", _ms(started)))
            return
        for pack in job.packs:
            job.add(self._evaluate(pack, interp, compiled, started))
            started = time.perf_counter()

    def _evaluate(self, pack: str, interp: Any, compiled: dict[str, Any], started: float) -> _Outcome:
        """Query the pack's ``deny`` and ``warn`` rules: the decision, and nothing else.

        Querying the whole package would also build every helper rule of it, which on a
        large plan costs up to ten times more. A rule that is undefined is left out of
        the document, so reading it fails closed.
        """
        bundle = self._engine.bundles[pack]
        try:
            if pack not in compiled:
                compiled[pack] = rego.compile_pack(bundle.modules, bundle.data, list(_entrypoints(pack).values()))
            document = {}
            for rule, entrypoint in _entrypoints(pack).items():
                value = rego.query_entrypoint(interp, compiled[pack], entrypoint)
                if value is not rego.UNDEFINED:
                    document[rule] = value
        except (RegoError, PolicyEvalError) as exc:
            return _Outcome(pack, None, str(exc), _ms(started))
        except Exception as exc:  # a worker must always answer; the caller then fails closed
            return _Outcome(pack, None, f"{type(exc).__name__}: {exc}", _ms(started))
        return _Outcome(pack, document, None, _ms(started))


class RegoEngine:
    """Evaluate bundles in-process with regopy (rego-cpp); see the module docstring."""

    def __init__(self, bundles: Sequence[Bundle], timeout_s: float = 2.0) -> None:
        self.bundles: dict[str, Bundle] = {}
        for bundle in bundles:
            if bundle.name in self.bundles:
                raise ValueError(f"two bundles provide the pack {bundle.name!r}")
            self.bundles[bundle.name] = bundle
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._abandoned_running = 0

    def evaluate(self, bundle_name_or_pack: str, input: dict[str, Any]) -> Decision:
        """Evaluate one pack; a failure of any kind is a policy_error deny."""
        name = pack_name(bundle_name_or_pack)
        if name not in self.bundles:
            return unknown_pack(name, input)
        return self._evaluate_packs([name], input)[0]

    def evaluate_all(self, input: dict[str, Any]) -> list[Decision]:
        """Evaluate every pack, in the order the bundles were given, with one input conversion."""
        return self._evaluate_packs(list(self.bundles), input)

    def close(self) -> None:
        """Stop the idle workers (abandoned ones stop when their evaluation ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.jobs.put(None)

    def __enter__(self) -> RegoEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _evaluate_packs(self, packs: list[str], input: dict[str, Any]) -> list[Decision]:
        digest = safe_input_digest(input)
        decisions: dict[str, Decision] = {}
        if not digest:
            for pack in packs:
                decisions[pack] = self._error(pack, digest, "the input is not canonical JSON", 0.0)
        pending = [p for p in packs if p not in decisions]
        while pending:
            worker = self._checkout()
            if worker is None:
                message = "too many runaway policy evaluations are still running"
                decisions.update({p: self._error(p, digest, message, 0.0) for p in pending})
                break
            job = _Job(tuple(pending), input)
            worker.jobs.put(job)
            pending = self._collect(worker, job, digest, decisions)
        return [decisions[p] for p in packs]

    def _collect(self, worker: _Worker, job: _Job, digest: str, decisions: dict[str, Decision]) -> list[str]:
        """Gather a job's outcomes; on a timeout abandon the worker and return what is left.

        The caller sleeps until the job is done, or until the pack being evaluated has run
        for ``timeout_s`` (each finished pack gives the next its own ``timeout_s``).
        """
        while not job.done.is_set():
            remaining = job.pack_started + self.timeout_s - time.monotonic()
            if remaining <= 0:
                self._abandon(worker)
                outcomes = list(job.outcomes)
                self._decide(outcomes, digest, decisions)
                pack = job.packs[len(outcomes)]
                message = f"evaluation timed out after {self.timeout_s:g}s"
                decisions[pack] = self._error(pack, digest, message, self.timeout_s * 1000)
                return list(job.packs[len(outcomes) + 1 :])
            job.done.wait(remaining)
        self._decide(job.outcomes, digest, decisions)
        self._checkin(worker)
        return []

    def _decide(self, outcomes: list[_Outcome], digest: str, decisions: dict[str, Decision]) -> None:
        for outcome in outcomes:
            meta = self.bundles[outcome.pack].meta
            if outcome.error is not None:
                decisions[outcome.pack] = policy_error(meta, digest, outcome.error, outcome.duration_ms)
            else:
                decisions[outcome.pack] = decision_from_document(meta, digest, outcome.document, outcome.duration_ms)

    def _error(self, pack: str, digest: str, message: str, duration_ms: float) -> Decision:
        return policy_error(self.bundles[pack].meta, digest, message, duration_ms)

    def _checkout(self) -> _Worker | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._abandoned_running >= MAX_ABANDONED_WORKERS:
                return None
        return _Worker(self)

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def _abandon(self, worker: _Worker) -> None:
        with self._lock:
            worker.abandoned = True
            self._abandoned_running += 1
        worker.jobs.put(None)

    def _abandoned_finished(self) -> None:
        with self._lock:
            self._abandoned_running -= 1


def _entrypoints(pack: str) -> dict[str, str]:
    return {rule: f"mc/{pack}/{rule}" for rule in ("deny", "warn")}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
