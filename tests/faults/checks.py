"""What every fault test asserts once its fault is over, and the recovery figures it measured.

(a) every run finishes and succeeds within the deadline; (b) no step succeeds twice;
(c) no package runs twice unless its worker was really lost: side effects per step are 1,
or at most 1 + its ``lost`` attempts when the test killed or cut off a worker, and no
attempt is ``lost`` at all when only PostgreSQL or Redis failed; (d) the API never
answered 500 while the dependency was down (``Outage``), checked by the tests themselves.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cluster import Cluster, Outage, dump

RESULTS: list[Recovery] = []


@dataclass
class Recovery:
    """One scenario's figures: seconds from the end of the fault to the last run finished."""

    scenario: str
    runs: int
    fault_seconds: float
    recovered_seconds: float | None = None  # last run final, after the fault ended
    slowest_run_seconds: float | None = None  # creation to final, of the slowest run
    unfinished: int = 0
    failed: int = 0
    lost_attempts: int = 0
    extra_side_effects: int = 0  # package runs beyond one per step
    api: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def check_recovery(
    cluster: Cluster,
    runs: dict[str, str],
    *,
    scenario: str,
    fault_started: float,
    fault_ended: float,
    deadline: float,
    workers_lost: bool,
    outage: Outage | None = None,
) -> Recovery:
    """Wait up to ``deadline`` seconds after the fault's end for every run, then check (a)-(c).

    ``fault_started`` and ``fault_ended`` are ``time.time()`` values. Records the figures
    (``RESULTS``) whatever the outcome, and raises AssertionError listing every problem.
    """
    ids = list(runs)
    remaining = max(deadline - (time.time() - fault_ended), 1)
    cluster.wait_finished(ids, timeout=remaining)
    rows = cluster.executions(ids)
    steps = cluster.steps(ids)
    effects = cluster.effects_by_step()
    result = Recovery(scenario=scenario, runs=len(ids), fault_seconds=round(fault_ended - fault_started, 1))
    if outage is not None:
        result.api = outage.summary()

    finished = [row["finished_at"].timestamp() for row in rows.values() if row["finished_at"] is not None]
    if finished:
        result.recovered_seconds = round(max(max(finished) - fault_ended, 0), 1)
        durations = [
            row["finished_at"].timestamp() - row["created_at"].timestamp()
            for row in rows.values()
            if row["finished_at"] is not None
        ]
        result.slowest_run_seconds = round(max(durations), 1)
    for execution_id in ids:
        status = rows.get(execution_id, {}).get("status")
        if status not in ("succeeded", "failed", "cancelled"):
            result.unfinished += 1
            result.problems.append(f"run {runs[execution_id]} ({execution_id}) still {status} {deadline:.0f} s after")
        elif status != "succeeded":
            result.failed += 1
            result.problems.append(f"run {runs[execution_id]} ({execution_id}) {status}")

    for step in steps:
        where = f"{runs[step['execution']]}/{step['step_id']}"
        outcomes = [attempt.get("outcome") for attempt in step["attempts"]]
        lost = outcomes.count("lost")
        result.lost_attempts += lost
        if outcomes.count("succeeded") > 1:
            result.problems.append(f"{where} succeeded {outcomes.count('succeeded')} times: {outcomes}")
        if lost and not workers_lost:
            result.problems.append(f"{where} has {lost} lost attempt(s) though no worker was lost: {outcomes}")
        count = effects.get((runs[step["execution"]], step["step_id"]), 0)
        allowed = 1 + (lost if workers_lost else 0)
        result.extra_side_effects += max(count - 1, 0)
        if count > allowed:
            result.problems.append(
                f"{where} ran its package {count} times ({lost} lost attempts, status {step['status']}): {outcomes}"
            )
        if step["status"] == "succeeded" and count == 0:
            result.problems.append(f"{where} succeeded without running its package")

    RESULTS.append(result)
    _save(result)
    assert not result.problems, cluster.report(
        f"{scenario}: {len(result.problems)} problem(s)",
        *result.problems[:40],
        f"figures: {dump(asdict(result) | {'problems': len(result.problems)})}",
        f"stuck steps: {dump([s for s in steps if s['status'] not in ('succeeded',)][:10])}",
    )
    return result


def _save(result: Recovery) -> None:
    """Append the figures to $FAULTS_RESULTS (JSON lines), when set: docs/reliability.md's table."""
    path = os.environ.get("FAULTS_RESULTS")
    if path:
        with Path(path).open("a") as out:
            out.write(json.dumps(asdict(result) | {"at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def summary_lines() -> list[str]:
    lines = []
    for r in RESULTS:
        lines.append(
            f"{r.scenario}: {r.runs} runs, fault {r.fault_seconds} s, recovered {r.recovered_seconds} s after it,"
            f" slowest run {r.slowest_run_seconds} s, unfinished {r.unfinished}, failed {r.failed},"
            f" lost attempts {r.lost_attempts}, extra package runs {r.extra_side_effects}, problems {len(r.problems)}"
        )
        if r.api:
            lines.append(f"    API during the fault: {json.dumps(r.api, sort_keys=True)}")
    return lines
