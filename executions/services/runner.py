"""Running one step on a worker: claim it, render its inputs, run its package, record the outcome.

Claiming and recording are short transactions; the package runs outside any transaction.
A message delivered again (worker lost, broker redelivery) finds the step already
claimed or finished and does nothing twice: outputs are recorded only by the attempt
that holds the claim.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from executions.artifacts import ArtifactStore
from executions.choices import StepKind, StepStatus
from executions.expressions import ExpressionError, references, render
from executions.models import Execution, StepRun
from executions.packages.base import InputInvalid, PackageSettings, StepContext, StepFailed
from executions.packages.registry import UnknownPackage, default_registry
from executions.services.claims import RUNNING_HERE, Claim, Throttled, step_claim, step_resume
from executions.services.messages import join_if_settled
from executions.services.outputs import outputs_load, outputs_store
from executions.services.quotas import (
    QuotaHeld,
    quota_slot_freed,
)
from executions.services.recording import (
    HandedOff,
    Handoff,
    Outcome,
    crash_error,
    holds_claim,
    step_attempt_failed,
    step_outcome_record,
    until_recorded,
)
from executions.services.steplog import PII, StepLog, failure_log
from mc_project import metrics
from workflows.manifest import canonical_json, sha256_digest

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def _package_settings() -> PackageSettings:
    return PackageSettings(
        http_allowed_hosts=tuple(settings.MC_HTTP_ALLOWED_HOSTS),
        python_allowed_modules=tuple(settings.MC_PYTHON_ALLOWED_MODULES),
    )


def _render(step: StepRun, log: StepLog) -> Any:
    """The step's ``with`` with its expressions evaluated; pii it receives is kept out of ``log``."""
    found = [ref for _, ref in references(step.with_template)]
    if not found:
        return step.with_template
    names = {ref.name for ref in found if ref.kind == "steps"}
    inputs = {}
    if any(ref.kind == "inputs" for ref in found):
        inputs = Execution.objects.values_list("inputs", flat=True).get(pk=step.execution_id)
    outputs = {}
    if names:
        rows = StepRun.objects.filter(
            execution_id=step.execution_id, kind=StepKind.STEP, step_id__in=names, status=StepStatus.SUCCEEDED
        )
        for row in rows:
            outputs[row.step_id] = outputs_load(row)
            if PII in row.data_classes:
                log.redact(outputs[row.step_id])
    matrix = step.matrix if step.kind == StepKind.SHARD else None
    return render(step.with_template, inputs=inputs, steps=outputs, matrix=matrix)


def _failure(exc: BaseException, timeout: int) -> tuple[dict[str, Any], bool]:
    """The error record of a failed attempt and whether another attempt may help."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"code": "timeout", "message": f"timed out after {timeout} s", "retryable": True}, True
    if isinstance(exc, InputInvalid):
        details = exc.details or []
        return {"code": "input_invalid", "message": exc.message, "details": details, "retryable": False}, False
    if isinstance(exc, StepFailed):
        error = {"code": "step_failed", "message": exc.message, "retryable": exc.retryable}
        if exc.details:
            error["details"] = exc.details
        return error, exc.retryable
    if isinstance(exc, ExpressionError):
        return {"code": "expression_error", "message": str(exc), "retryable": False}, False
    if isinstance(exc, UnknownPackage):
        return {"code": "unknown_package", "message": str(exc), "retryable": False}, False
    return crash_error(exc), True


def step_execute(
    step_pk: int,
    *,
    worker: str,
    attempt: int | None = None,
    outcome: dict[str, Any] | None = None,
    handoff: Handoff | None = None,
    tenant: Any = None,
    resource_class: str = "",
) -> float | None:
    """Run one attempt of a step. Returns the delay before the next attempt, or None when done.

    A message carries only the step, or (when an attempt was handed on because the
    database did not answer) the attempt it continues and, once the package has run, its
    outcome to record. Raises HandedOff when this attempt goes on in a new message.
    """
    if outcome is not None:
        recorded = Outcome.from_message(outcome)
        step = StepRun.objects.filter(pk=step_pk).first()
        if step is None or not holds_claim(step, recorded.attempt):
            return None  # recorded already, or cancelled meanwhile
        delay = until_recorded(
            step_outcome_record,
            step,
            recorded,
            handoff=handoff,
            resume=lambda: {"attempt": recorded.attempt, "outcome": outcome},
        )
        quota_slot_freed(step)
        return delay
    try:
        if attempt is None:
            claim = step_claim(step_pk, worker=worker, tenant=tenant, resource_class=resource_class)
        else:
            claim = step_resume(step_pk, attempt, worker=worker)
    except Throttled:
        return Throttled.delay
    except QuotaHeld as held:
        return held.delay
    if claim is None:
        return None
    metrics.root_step_started(claim.step)
    RUNNING_HERE.add(step_pk)
    handed_off = False
    try:
        return _attempt_run(claim, handoff)
    except HandedOff:
        handed_off = True
        raise
    finally:
        RUNNING_HERE.discard(step_pk)
        metrics.step_attempt_ended(claim.step)
        if not handed_off:
            quota_slot_freed(claim.step, claim.tenant_id)


def _attempt_run(claim: Claim, handoff: Handoff | None) -> float | None:
    """Run the package of a claimed attempt and record its outcome; the delay before a retry, or None."""
    step = claim.step
    log = StepLog(settings.MC_STEP_LOG_LIMIT)
    input_digest = ""
    pii = PII in step.data_classes
    try:
        # Reading the inputs and upstream outputs needs the database: wait for it, the package has not run.
        with_ = until_recorded(_render, step, log, handoff=handoff, resume=lambda: {"attempt": claim.attempt})
        if pii:
            log.redact_rendered(step.with_template, with_)
        input_digest = sha256_digest(canonical_json(with_))
        package = default_registry().resolve(step.uses)
        problems = package.check_input(with_)
        if problems:
            details = [{"path": "/with" + problem.path, "message": problem.message} for problem in problems]
            raise InputInvalid(
                f"invalid inputs for {step.uses}: {details[0]['path']} {details[0]['message']}", details=details
            )
        context = StepContext(
            execution_id=str(step.execution_id),
            step_id=step.step_id,
            attempt=claim.attempt,
            resource_class=step.resource_class,
            timeout_seconds=step.timeout_seconds,
            log=log.write,
            artifacts=ArtifactStore(),
            settings=_package_settings(),
        )
        outputs = package.run(context, with_)
        if not isinstance(outputs, dict):
            raise StepFailed(f"{step.uses} returned {type(outputs).__name__}, not an object", retryable=False)
        if pii:
            log.redact(outputs)
        outcome = _succeeded(claim.attempt, outputs, input_digest, log)
    except HandedOff:
        raise
    except Exception as exc:
        outcome = _failed(claim.attempt, exc, step.timeout_seconds, input_digest, log)
    return until_recorded(
        step_outcome_record,
        step,
        outcome,
        handoff=handoff,
        resume=lambda: {"attempt": claim.attempt, "outcome": outcome.as_message()},
    )


def _succeeded(attempt: int, outputs: dict[str, Any], input_digest: str, log: StepLog) -> Outcome:
    """The outcome of a package that returned ``outputs``, stored (a failure if they cannot be)."""
    try:
        stored = outputs_store(outputs)
    except (TypeError, ValueError) as exc:  # outputs that are not plain JSON
        error = {"code": "invalid_outputs", "message": f"outputs are not JSON: {exc}", "retryable": False}
        log.failed(error)
        return Outcome(attempt, False, input_digest, log.text(), error=error, retryable=False)
    except Exception as exc:  # the artifact store failed: another attempt may store them
        log.failed(error := crash_error(exc))
        return Outcome(attempt, False, input_digest, log.text(), error=error, retryable=True)
    return Outcome(
        attempt,
        True,
        input_digest,
        log.text(),
        outputs=stored.inline,
        outputs_ref=stored.ref,
        output_digest=stored.digest,
    )


def _failed(attempt: int, exc: BaseException, timeout: int, input_digest: str, log: StepLog) -> Outcome:
    error, retryable = _failure(exc, timeout)
    for key in ("message", "traceback"):  # an error may quote the pii it choked on
        if isinstance(error.get(key), str):
            error[key] = log.scrub(error[key])
    log.failed(error)  # the log says why the attempt failed (issue 13)
    return Outcome(attempt, False, input_digest, log.text(), error=error, retryable=retryable)


def step_hard_timeout(step_pk: int, timeout: int) -> float | None:
    """The worker killed an attempt at its hard time limit: record it as a timeout."""
    step = StepRun.objects.filter(pk=step_pk).first()
    if step is None or step.status != StepStatus.RUNNING:
        return None
    error = {"code": "timeout", "message": f"killed at the hard time limit after {timeout} s", "retryable": True}
    # A shard cannot be sent again into its chord after the chord counted it as failed.
    retryable = step.kind != StepKind.SHARD
    delay = step_attempt_failed(
        step.pk,
        step.attempt,
        error=error,
        retryable=retryable,
        input_digest=step.input_digest,
        log=failure_log(error, settings.MC_STEP_LOG_LIMIT),
    )
    if step.kind == StepKind.SHARD and step.parent_id is not None:
        with transaction.atomic():
            join_if_settled(step.parent_id)
    quota_slot_freed(step)
    return delay
