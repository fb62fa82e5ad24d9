"""Reads for the operator console's run page: the graph, the timeline, the plan and the attempts.

Everything here is derived from the execution's own rows (``StepRun``, ``Execution.plan``),
in plain dicts ready for JSON: the page draws them, and polls ``run_state`` while the run
is not finished. No writes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import Truncator

from executions.choices import STEP_TERMINAL, StepKind, StepStatus
from executions.models import Execution, StepRun

#: Past this many nodes the graph is drawn collapsed by stage (one node per band of stages).
COLLAPSE_AT = 150
#: Most nodes of a collapsed graph: consecutive stages share a band beyond it.
MAX_BANDS = 40
#: Most rows of the run page's step and plan tables (the graph and timeline show every step).
TABLE_ROWS = 200
#: Steps whose details (attempts, inputs, outputs, log) the run page shows inline.
DETAILS_INLINE = 30

STATUS_COLOURS = {
    StepStatus.PENDING: "#c9ced6",
    StepStatus.QUEUED: "#8fb8f0",
    StepStatus.RUNNING: "#2f7de1",
    StepStatus.RETRYING: "#f0a030",
    StepStatus.SUCCEEDED: "#2e9e5b",
    StepStatus.FAILED: "#d7373f",
    StepStatus.SKIPPED: "#9aa0a6",
    StepStatus.CANCELLED: "#6b4fa0",
}

_STEP_FIELDS = (
    "id",
    "step_id",
    "kind",
    "parent_id",
    "shard_index",
    "sequence",
    "uses",
    "needs",
    "status",
    "queue",
    "attempt",
    "max_attempts",
    "attempts",
    "queued_at",
    "started_at",
    "attempt_started_at",
    "finished_at",
    "quota_held_since",
    "next_attempt_at",
    "compensate",
    "matrix",
    "error",
)


def usd(value: Any) -> str:
    """A cost for people: ``$0.0010``, ``$12.50``, ``<$0.0001``, ``$0``."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "-"
    if amount == 0:
        return "$0"
    if amount < 0.0001:
        return "<$0.0001"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def seconds_ms(value: Any) -> str:
    """A duration in seconds for people, to the millisecond: ``12 ms``, ``1.234 s``, ``2 m 03.100 s``."""
    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} m {rest:06.3f} s"


def _ms(moment: datetime | None, origin: datetime) -> int | None:
    return None if moment is None else round((moment - origin).total_seconds() * 1000)


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def node_key(kind: str, step_id: str) -> str:
    return f"compensate:{step_id}" if kind == StepKind.COMPENSATION else step_id


@dataclass
class RunRows:
    """The execution's step rows, read once: tasks and compensations, and their shards."""

    execution: Execution
    steps: list[StepRun]  # kind step or compensation, manifest order
    shards: dict[int, list[StepRun]]  # parent pk -> its shards

    @classmethod
    def read(cls, execution: Execution) -> RunRows:
        rows = list(
            StepRun.objects.filter(execution=execution).only(*_STEP_FIELDS).order_by("kind", "sequence", "shard_index")
        )
        shards: dict[int, list[StepRun]] = {}
        steps = []
        for row in rows:
            if row.kind == StepKind.SHARD and row.parent_id is not None:
                shards.setdefault(row.parent_id, []).append(row)
            else:
                steps.append(row)
        steps.sort(key=lambda row: (row.kind == StepKind.COMPENSATION, row.sequence))
        return cls(execution, steps, shards)


def _stages(execution: Execution) -> dict[str, int]:
    stages = (execution.plan or {}).get("stages") or []
    return {step_id: index for index, ids in enumerate(stages) for step_id in ids}


def _plan_steps(execution: Execution) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in (execution.plan or {}).get("steps") or [] if isinstance(step, dict)}


def _duration_ms(row: StepRun) -> int | None:
    if row.started_at is None:
        return None
    end = row.finished_at or timezone.now()
    return round((end - row.started_at).total_seconds() * 1000)


def run_graph(rows: RunRows) -> dict[str, Any]:
    """Nodes (a step, a matrix task with its shard counts, a compensation) and ``needs`` edges."""
    stage = _stages(rows.execution)
    nodes = []
    keys = set()
    for row in rows.steps:
        key = node_key(row.kind, row.step_id)
        keys.add(key)
        shards = rows.shards.get(row.pk, [])
        node: dict[str, Any] = {
            "key": key,
            "pk": row.pk,
            "id": row.step_id,
            "kind": row.kind,
            "status": row.status,
            "stage": stage.get(row.step_id, 0) + (1 if row.kind == StepKind.COMPENSATION else 0),
            "uses": row.uses,
            "attempts": row.attempt,
            "duration_ms": _duration_ms(row),
            "compensation": row.kind == StepKind.COMPENSATION,
            "compensable": bool(row.compensate),
        }
        if row.matrix is not None and row.kind == StepKind.STEP:
            counts = Counter(shard.status for shard in shards)
            node["shards"] = {"total": len(shards) or len(row.matrix or []), "by_status": dict(counts)}
        nodes.append(node)
    edges = []
    for row in rows.steps:
        target = node_key(row.kind, row.step_id)
        if row.kind == StepKind.COMPENSATION:
            if row.step_id in keys:
                edges.append({"from": row.step_id, "to": target, "compensation": True})
            continue
        edges.extend({"from": need, "to": target} for need in row.needs or [] if need in keys)
    return {"nodes": nodes, "edges": edges, "collapsed": len(nodes) > COLLAPSE_AT, "bands": _bands(nodes, edges)}


def _bands(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The collapsed view of a large graph: consecutive stages grouped into at most ``MAX_BANDS`` bands."""
    if len(nodes) <= COLLAPSE_AT:
        return []
    last = max(node["stage"] for node in nodes)
    width = max(1, -(-(last + 1) // MAX_BANDS))
    bands: dict[int, dict[str, Any]] = {}
    band_of: dict[str, int] = {}
    for node in nodes:
        index = node["stage"] // width
        band_of[node["key"]] = index
        band = bands.setdefault(
            index,
            {
                "key": f"band-{index}",
                "first_stage": index * width,
                "last_stage": min(last, index * width + width - 1),
                "steps": 0,
                "by_status": Counter(),
                "members": [],
            },
        )
        band["steps"] += 1
        band["by_status"][node["status"]] += 1
        band["members"].append(node["key"])
    links = {(band_of[e["from"]], band_of[e["to"]]) for e in edges if band_of[e["from"]] != band_of[e["to"]]}
    out = []
    for index in sorted(bands):
        band = bands[index]
        band["by_status"] = dict(band["by_status"])
        band["needs"] = sorted(f"band-{a}" for a, b in links if b == index)
        out.append(band)
    return out


def _critical_keys(rows: RunRows) -> list[str]:
    """The actual critical path: from the step that finished last, back through the need that finished last."""
    by_id = {row.step_id: row for row in rows.steps if row.kind == StepKind.STEP}
    finished = [row for row in by_id.values() if row.finished_at is not None]
    if not finished:
        return []
    current: StepRun | None = max(finished, key=lambda row: row.finished_at)  # type: ignore[arg-type,return-value]
    path = []
    while current is not None:
        path.append(current.step_id)
        needs = [by_id[n] for n in current.needs or [] if n in by_id and by_id[n].finished_at is not None]
        current = max(needs, key=lambda row: row.finished_at) if needs else None  # type: ignore[arg-type,return-value]
    return path[::-1]


def _segments(row: StepRun, origin: datetime, now: datetime) -> list[dict[str, Any]]:
    """Queued, waiting on a quota slot, each attempt running, and the backoff between attempts."""
    segments: list[dict[str, Any]] = []
    attempts = [a for a in row.attempts or [] if isinstance(a, dict)]
    first_start = _when(attempts[0].get("started_at")) if attempts else row.started_at
    if row.queued_at is not None:
        queued_end = first_start or row.quota_held_since or (None if row.status in STEP_TERMINAL else now)
        if queued_end is not None and attempts and first_start is not None:
            queued_end = max(row.queued_at, first_start - _quota_waited(attempts[0]))
        if queued_end is not None:
            segments.append({"kind": "queued", "start": _ms(row.queued_at, origin), "end": _ms(queued_end, origin)})
    if row.quota_held_since is not None and row.status in (StepStatus.QUEUED, StepStatus.PENDING):
        segments.append({"kind": "quota", "start": _ms(row.quota_held_since, origin), "end": _ms(now, origin)})
    previous_end: datetime | None = None
    for record in attempts:
        start, end = _when(record.get("started_at")), _when(record.get("finished_at"))
        if start is None:
            continue
        waited = _quota_waited(record)
        wait_start = start - waited
        if previous_end is not None and wait_start > previous_end:
            segments.append({"kind": "backoff", "start": _ms(previous_end, origin), "end": _ms(wait_start, origin)})
        if waited:
            segments.append(
                {
                    "kind": "quota",
                    "start": _ms(wait_start, origin),
                    "end": _ms(start, origin),
                    "attempt": record.get("attempt"),
                }
            )
        segments.append(
            {
                "kind": "running",
                "start": _ms(start, origin),
                "end": _ms(end or now, origin),
                "attempt": record.get("attempt"),
                "outcome": record.get("outcome", ""),
                "error": record.get("error", ""),
            }
        )
        previous_end = end
    if row.status == StepStatus.RUNNING and (not attempts or attempts[-1].get("attempt") != row.attempt):
        start = row.attempt_started_at or row.started_at
        if start is not None and previous_end is not None and start > previous_end:
            segments.append({"kind": "backoff", "start": _ms(previous_end, origin), "end": _ms(start, origin)})
        if start is not None:
            segments.append(
                {"kind": "running", "start": _ms(start, origin), "end": _ms(now, origin), "attempt": row.attempt}
            )
    elif row.status == StepStatus.RETRYING and previous_end is not None:
        segments.append({"kind": "backoff", "start": _ms(previous_end, origin), "end": _ms(now, origin)})
    return segments


def _quota_waited(record: dict[str, Any]) -> timedelta:
    """How long the attempt waited for a slot of its tenant's quota before it started (``quota_waited_ms``)."""
    waited = record.get("quota_waited_ms")
    if isinstance(waited, bool) or not isinstance(waited, int | float) or waited <= 0:
        return timedelta(0)
    return timedelta(milliseconds=waited)


def run_timeline(rows: RunRows) -> dict[str, Any]:
    """One row per step (matrix shards under their task): its segments in ms from the run's start."""
    execution = rows.execution
    origin = execution.started_at or execution.created_at
    now = timezone.now()
    plan = _plan_steps(execution)
    critical = set(_critical_keys(rows))
    planned_critical = set((execution.plan or {}).get("critical_path") or [])
    out = []
    for row in rows.steps:
        segments = _segments(row, origin, now)
        for shard in rows.shards.get(row.pk, []):
            for segment in _segments(shard, origin, now):
                segment["shard"] = shard.shard_index
                segments.append(segment)
        estimate = plan.get(row.step_id, {}).get("estimated_seconds") if row.kind == StepKind.STEP else None
        out.append(
            {
                "key": node_key(row.kind, row.step_id),
                "label": row.step_id if row.kind == StepKind.STEP else f"{row.step_id} (compensation)",
                "status": row.status,
                "critical": row.kind == StepKind.STEP and row.step_id in critical,
                "planned_critical": row.kind == StepKind.STEP and row.step_id in planned_critical,
                "estimate_ms": None if estimate is None else round(float(estimate) * 1000),
                "actual_ms": _duration_ms(row),
                "segments": segments,
            }
        )
    end = execution.finished_at or now
    return {
        "origin": origin.isoformat(),
        "end_ms": _ms(end, origin),
        "estimate_ms": round(float((execution.plan or {}).get("estimated_seconds") or 0) * 1000),
        "rows": out,
        "critical_path": _critical_keys(rows),
    }


def _clock(moment: datetime | None) -> str:
    """A time of day to the millisecond, as the steps table shows it (the site's time zone)."""
    return "" if moment is None else timezone.localtime(moment).strftime("%H:%M:%S.%f")[:-3]


def table_steps(steps: list[StepRun]) -> list[StepRun]:
    """The rows of the run page's steps table: past ``TABLE_ROWS``, failed, retried and running first.

    The graph and the timeline show every step; the table lists what needs a look first.
    """
    if len(steps) <= TABLE_ROWS:
        return steps
    first = interesting_steps(steps)
    seen = {step.pk for step in first}
    return (first + [step for step in steps if step.pk not in seen])[:TABLE_ROWS]


def run_steps(rows: RunRows) -> list[dict[str, Any]]:
    """The cells of the steps table's rows, in its order: what the page refreshes while the run goes on."""
    out = []
    for row in table_steps(rows.steps):
        error = row.error if isinstance(row.error, dict) else {}
        duration = _duration_ms(row)
        out.append(
            {
                "pk": row.pk,
                "key": node_key(row.kind, row.step_id),
                "status": row.status,
                "attempts": f"{row.attempt}/{row.max_attempts}",
                "started": _clock(row.started_at),
                "finished": _clock(row.finished_at),
                "duration": seconds_ms(None if duration is None else duration / 1000),
                "error_code": str(error.get("code", "")),
                "error": Truncator(str(error.get("message", ""))).chars(120),
            }
        )
    return out


def run_state(execution: Execution) -> dict[str, Any]:
    """What the run page draws and polls: status, counters, graph, timeline, the steps table's cells."""
    rows = RunRows.read(execution)
    counts = Counter(row.status for row in rows.steps if row.kind == StepKind.STEP)
    end = execution.finished_at or timezone.now()
    started = execution.started_at or execution.created_at
    return {
        "id": str(execution.pk),
        "status": execution.status,
        "terminal": execution.is_terminal,
        "duration_ms": round((end - started).total_seconds() * 1000),
        "steps_total": sum(counts.values()),
        "counts": {status: counts.get(status, 0) for status in StepStatus.values},
        "graph": run_graph(rows),
        "timeline": run_timeline(rows),
        "steps": run_steps(rows),
        "colours": {str(status): colour for status, colour in STATUS_COLOURS.items()},
    }


def plan_tables(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan for people: stages, per-step cost and queue, totals, costs rounded."""
    steps = [step for step in plan.get("steps") or [] if isinstance(step, dict)]
    rows = [
        {
            "id": step.get("id"),
            "stage": step.get("stage"),
            "uses": step.get("uses"),
            "queue": step.get("queue"),
            "shards": step.get("shards", 1),
            "retries": step.get("retries", 0),
            "needs": ", ".join(step.get("needs") or []),
            "estimate": seconds_ms(step.get("estimated_seconds")),
            "cost": usd(step.get("estimated_usd")),
            "critical": step.get("id") in (plan.get("critical_path") or []),
        }
        for step in steps
    ]
    queues = Counter(step.get("queue") for step in steps)
    return {
        "stages": [
            {"index": i, "steps": ", ".join(ids), "count": len(ids)} for i, ids in enumerate(plan.get("stages") or [])
        ],
        "steps": rows,
        "queues": sorted(queues.items()),
        "estimate": seconds_ms(plan.get("estimated_seconds")),
        "cost": usd(plan.get("estimated_usd")),
        "critical_path": " → ".join(plan.get("critical_path") or []),
    }


_ATTEMPT_HEADER = re.compile(r"^--- attempt (\d+) on (.*) ---$", re.MULTILINE)


def log_by_attempt(log: str) -> dict[int, str]:
    """The step's log split at the ``--- attempt N on worker ---`` headers MC writes."""
    parts: dict[int, str] = {}
    matches = list(_ATTEMPT_HEADER.finditer(log))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(log)
        parts[int(match.group(1))] = log[match.end() : end].strip("\n")
    if not matches and log:
        parts[0] = log
    return parts


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def step_details(step: StepRun) -> dict[str, Any]:
    """A step for its panel: attempts with durations and errors, inputs and outputs, digests, logs."""
    logs = log_by_attempt(step.log)
    error_code = (step.error or {}).get("code", "") if isinstance(step.error, dict) else ""
    attempts = []
    records = [a for a in step.attempts or [] if isinstance(a, dict)]
    for index, record in enumerate(records):
        start, end = _when(record.get("started_at")), _when(record.get("finished_at"))
        last = index == len(records) - 1
        attempts.append(
            {
                "attempt": record.get("attempt"),
                "worker": record.get("worker", ""),
                "pid": record.get("pid"),
                "started_at": start,
                "finished_at": end,
                "duration": seconds_ms((end - start).total_seconds()) if start and end else "-",
                "outcome": record.get("outcome", ""),
                "code": _code_in_log(logs.get(record.get("attempt") or 0, "")) or (error_code if last else ""),
                "error": record.get("error", ""),
                "log": logs.get(record.get("attempt") or 0, ""),
            }
        )
    if step.status == StepStatus.RUNNING and (not records or records[-1].get("attempt") != step.attempt):
        attempts.append(
            {
                "attempt": step.attempt,
                "worker": step.worker,
                "pid": step.worker_pid,
                "started_at": step.attempt_started_at,
                "finished_at": None,
                "duration": "running",
                "outcome": "running",
                "code": "",
                "error": "",
                "log": logs.get(step.attempt, ""),
            }
        )
    duration = _duration_ms(step)
    return {
        "step": step,
        "attempts": attempts,
        "with": pretty(step.with_template),
        "outputs": pretty(step.outputs) if step.outputs is not None else "",
        "error": pretty(step.error) if step.error else "",
        "duration": seconds_ms(None if duration is None else duration / 1000),
    }


_ERROR_LINE = re.compile(r"ERROR ([a-z_]+):")


def _code_in_log(text: str) -> str:
    found = _ERROR_LINE.search(text)
    return found.group(1) if found else ""


def interesting_steps(steps: Iterable[StepRun]) -> list[StepRun]:
    """Steps worth opening first: failed, retried or running ones."""
    return [
        step
        for step in steps
        if step.status in (StepStatus.FAILED, StepStatus.RUNNING, StepStatus.RETRYING) or step.attempt > 1
    ]


def manifest_graph(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest's DAG in the run graph's shape (every node ``pending``): for the version page."""
    from executions.graph import matrix_of, read_graph, shard_count, stages

    graph = read_graph(manifest)
    depth = stages(graph)
    nodes = []
    for task_id in graph.ids:
        task = graph.tasks[task_id]
        node: dict[str, Any] = {
            "key": task_id,
            "id": task_id,
            "kind": StepKind.STEP,
            "status": StepStatus.PENDING,
            "stage": depth.get(task_id, 0),
            "uses": str(task.get("uses", "")),
            "attempts": 0,
            "duration_ms": None,
            "compensation": False,
            "compensable": bool(task.get("compensate")),
        }
        if matrix_of(task):
            node["shards"] = {"total": shard_count(task), "by_status": {}}
        nodes.append(node)
    edges = [{"from": need, "to": task_id} for task_id in graph.ids for need in graph.needs[task_id]]
    return {"nodes": nodes, "edges": edges, "collapsed": len(nodes) > COLLAPSE_AT, "bands": _bands(nodes, edges)}
