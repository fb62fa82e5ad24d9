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


@dataclass(frozen=True)
class _Job:
    packs: tuple[str, ...]
    input: dict[str, Any]
    results: queue.SimpleQueue[_Outcome]


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
                job.results.put(_Outcome(pack, None, f"the input cannot be evaluated: {exc}", _ms(started)))
            return
        for pack in job.packs:
            job.results.put(self._evaluate(pack, interp, compiled, started))
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
            results: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
            worker.jobs.put(_Job(tuple(pending), input, results))
            pending = self._collect(worker, pending, results, digest, decisions)
        return [decisions[p] for p in packs]

    def _collect(
        self,
        worker: _Worker,
        pending: list[str],
        results: queue.SimpleQueue[_Outcome],
        digest: str,
        decisions: dict[str, Decision],
    ) -> list[str]:
        """Gather a job's outcomes; on a timeout abandon the worker and return what is left."""
        for index, pack in enumerate(pending):
            try:
                outcome = results.get(timeout=self.timeout_s)
            except queue.Empty:
                self._abandon(worker)
                message = f"evaluation timed out after {self.timeout_s:g}s"
                decisions[pack] = self._error(pack, digest, message, self.timeout_s * 1000)
                return pending[index + 1 :]
            meta = self.bundles[outcome.pack].meta
            if outcome.error is not None:
                decisions[outcome.pack] = policy_error(meta, digest, outcome.error, outcome.duration_ms)
            else:
                decisions[outcome.pack] = decision_from_document(meta, digest, outcome.document, outcome.duration_ms)
        self._checkin(worker)
        return []

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
