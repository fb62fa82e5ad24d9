"""The dry-run plan of a valid manifest: stages, critical path, cost, quota, side effects.

Pure Python (no Django): ``mc plan`` in the CLI and ``POST .../plan`` on the server
build the same plan. Nothing is rendered or run; ``with`` values that hold
expressions are priced with the package's default cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .graph import (
    TaskGraph,
    matrix_shards,
    ordered,
    read_graph,
    shard_count,
    stages,
    topological_order,
    transitive_needs,
)
from .packages.base import RESOURCE_CLASSES, Cost, TaskPackage, has_expression
from .packages.registry import PackageRegistry, default_registry

__all__ = [
    "Plan",
    "PlannedStep",
    "QuotaUse",
    "matrix_shards",
    "plan_build",
    "queue_for",
    "step_priorities",
    "topological_order",
    "transitive_needs",
]

#: Defaults of the manifest schema, repeated here because a valid manifest may omit them.
DEFAULT_RESOURCE_CLASS = "small"
DEFAULT_RETRIES = 0
DEFAULT_TIMEOUT_SECONDS = 3600
#: Broker priorities of steps (Redis: 0 is taken first; docs/adr/ADR-0011-critical-path-first.md).
CRITICAL_PRIORITY = 0
SLACK_PRIORITY = 3


def queue_for(resource_class: str) -> str:
    """The Celery queue steps of ``resource_class`` are sent to (``mc.small`` ...)."""
    return f"mc.{resource_class}"


@dataclass(frozen=True)
class PlannedStep:
    """One task as it will run. Costs are estimates of one attempt (retries not counted)."""

    id: str
    uses: str
    queue: str
    resource_class: str
    needs: list[str]
    stage: int
    shards: int  # 1 without a matrix
    retries: int
    timeout_seconds: int
    side_effects: bool
    data_classes: list[str]  # the task's and its package's, sorted
    estimated_seconds: float  # one attempt of one shard
    estimated_usd: float  # one attempt of every shard
    compensate: str | None  # the compensation's uses
    max_parallel: int | None = None  # strategy.max_parallel; None = all shards at once

    @property
    def waves(self) -> int:
        """How many rounds the shards run in (1 unless max_parallel holds some back)."""
        return math.ceil(self.shards / self.max_parallel) if self.max_parallel else 1

    @property
    def wall_seconds(self) -> float:
        """Estimated time from start to the last shard's end."""
        return self.estimated_seconds * self.waves


@dataclass(frozen=True)
class QuotaUse:
    """What a plan asks of one resource class's worker slots."""

    resource_class: str
    steps: int
    shards: int  # total step-attempt slots (one attempt per shard)
    max_parallel: int  # most slots one stage occupies at once


@dataclass(frozen=True)
class Plan:
    """The dry-run plan; ``as_dict()`` is its JSON form."""

    stages: list[list[str]]
    critical_path: list[str]
    steps: list[PlannedStep]
    estimated_seconds: float  # length of the critical path
    estimated_usd: float
    quota: dict[str, QuotaUse]
    policy_decisions: list[Any] = field(default_factory=list)
    side_effects: list[str] = field(default_factory=list)  # ids of steps with external side effects
    data_classes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (lists, dicts, strings, numbers, booleans, null)."""
        return asdict(self)


def _estimate(package: TaskPackage, with_: dict[str, Any], resource_class: str) -> Cost:
    if has_expression(with_):
        return package.cost.get(resource_class) or package.cost["small"]
    return package.estimate(with_, resource_class)


def _planned_step(task: dict[str, Any], graph: TaskGraph, stage: int, registry: PackageRegistry) -> PlannedStep:
    package = registry.resolve(task["uses"])
    resource_class = task.get("resource_class", DEFAULT_RESOURCE_CLASS)
    shards = shard_count(task)
    cost = _estimate(package, task.get("with", {}), resource_class)
    compensate = task.get("compensate")
    strategy = task.get("strategy") or {}
    return PlannedStep(
        id=task["id"],
        uses=task["uses"],
        queue=queue_for(resource_class),
        resource_class=resource_class,
        needs=list(graph.needs[task["id"]]),
        stage=stage,
        shards=shards,
        retries=task.get("retries", DEFAULT_RETRIES),
        timeout_seconds=task.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
        side_effects=package.side_effects,
        data_classes=sorted({*task.get("data_classes", ()), *package.data_classes}),
        estimated_seconds=cost.seconds,
        estimated_usd=cost.usd * shards,
        compensate=compensate["uses"] if isinstance(compensate, dict) else None,
        max_parallel=strategy.get("max_parallel"),
    )


def _critical_path(steps: list[PlannedStep], position: dict[str, int]) -> tuple[list[str], float]:
    """The chain of needs with the largest total wall time; ties go to the earlier task."""
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for step in steps:  # topological order
        before = None
        for need in sorted(step.needs, key=position.__getitem__):
            if before is None or finish[need] > finish[before]:
                before = need
        previous[step.id] = before
        finish[step.id] = step.wall_seconds + (finish[before] if before else 0.0)
    if not steps:
        return [], 0.0
    end = min(finish, key=lambda step_id: (-finish[step_id], position[step_id]))
    path: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        path.append(cursor)
        cursor = previous[cursor]
    return path[::-1], finish[end]


def _quota(steps: list[PlannedStep], stage_count: int) -> dict[str, QuotaUse]:
    width: dict[tuple[str, int], int] = {}
    for step in steps:
        running = min(step.shards, step.max_parallel or step.shards)
        width[step.resource_class, step.stage] = width.get((step.resource_class, step.stage), 0) + running
    quota = {}
    for resource_class in RESOURCE_CLASSES:
        mine = [step for step in steps if step.resource_class == resource_class]
        if mine:
            quota[resource_class] = QuotaUse(
                resource_class=resource_class,
                steps=len(mine),
                shards=sum(step.shards for step in mine),
                max_parallel=max(width.get((resource_class, stage), 0) for stage in range(stage_count)),
            )
    return quota


def plan_build(doc: dict[str, Any], *, registry: PackageRegistry | None = None) -> Plan:
    """The plan of a VALID manifest (check it with validate_manifest and package_problems first).

    Stages are longest-path depths from the tasks without needs; steps are listed
    by stage, then manifest order. A step's estimate is one attempt of one shard;
    shards run in parallel (in waves of ``max_parallel``), so the critical path
    counts a step's seconds once per wave, while its cost counts every shard.
    Raises UnknownPackage if a ``uses`` does not resolve.
    """
    registry = registry if registry is not None else default_registry()
    graph = read_graph(doc)
    depth = stages(graph)
    order = ordered(graph, depth)
    steps = [_planned_step(graph.tasks[task_id], graph, depth[task_id], registry) for task_id in order]
    stage_count = max(depth.values(), default=-1) + 1
    grouped: list[list[str]] = [[] for _ in range(stage_count)]
    for step in steps:
        grouped[step.stage].append(step.id)
    critical_path, seconds = _critical_path(steps, dict(graph.position))
    return Plan(
        stages=grouped,
        critical_path=critical_path,
        steps=steps,
        estimated_seconds=seconds,
        estimated_usd=sum(step.estimated_usd for step in steps),
        quota=_quota(steps, stage_count),
        policy_decisions=[],
        side_effects=[step.id for step in steps if step.side_effects],
        data_classes=sorted({data_class for step in steps for data_class in step.data_classes}),
    )


def step_priorities(plan: dict[str, Any]) -> dict[str, int]:
    """Each step's broker priority from a plan's JSON form: critical steps go first.

    A step with no slack (on a longest path of the run: delaying it delays the run) gets
    ``CRITICAL_PRIORITY``; any other gets ``SLACK_PRIORITY``. Slack is the run's estimated
    length minus the longest path through the step. ``steps`` are in stage order, so a
    step's needs come before it.
    """
    steps = plan.get("steps") or []
    wall: dict[str, float] = {}
    head: dict[str, float] = {}
    for step in steps:
        max_parallel = step.get("max_parallel")
        waves = math.ceil(step.get("shards", 1) / max_parallel) if max_parallel else 1
        wall[step["id"]] = float(step.get("estimated_seconds") or 0.0) * waves
        head[step["id"]] = wall[step["id"]] + max((head[need] for need in step.get("needs", ())), default=0.0)
    tail = dict(wall)
    for step in reversed(steps):
        for need in step.get("needs", ()):
            tail[need] = max(tail[need], wall[need] + tail[step["id"]])
    total = max(head.values(), default=0.0)
    tolerance = 1e-9 * max(total, 1.0)
    return {
        step_id: CRITICAL_PRIORITY
        if total - (head[step_id] + tail[step_id] - wall[step_id]) <= tolerance
        else SLACK_PRIORITY
        for step_id in wall
    }
