"""The task graph of a manifest: order, stages, transitive needs and matrix shards.

Pure Python (no Django). Every function here also accepts manifests that failed
validation (duplicate ids, unknown needs, cycles): it reads what it can, the
first definition of an id wins, and tasks in or after a cycle have no stage.
The planner re-exports the public functions; the engine and the expression
checker use them too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskGraph:
    """The readable tasks of a manifest and their needs, in manifest order."""

    ids: tuple[str, ...]  # first definition of each id, in manifest order
    position: Mapping[str, int]  # id -> index in ``ids``
    tasks: Mapping[str, dict[str, Any]]  # id -> the task object
    manifest_index: Mapping[str, int]  # id -> index in the manifest's tasks list
    needs: Mapping[str, tuple[str, ...]]  # known ids only, no self-needs, no repeats


def read_graph(doc: Any) -> TaskGraph:
    """The graph of ``doc``'s tasks, skipping whatever cannot be read."""
    raw = doc.get("tasks") if isinstance(doc, dict) else None
    tasks: dict[str, dict[str, Any]] = {}
    manifest_index: dict[str, int] = {}
    for index, task in enumerate(raw if isinstance(raw, list) else ()):
        if isinstance(task, dict) and isinstance(task.get("id"), str) and task["id"] not in tasks:
            tasks[task["id"]] = task
            manifest_index[task["id"]] = index
    needs: dict[str, tuple[str, ...]] = {}
    for task_id, task in tasks.items():
        listed = task.get("needs")
        known = (n for n in (listed if isinstance(listed, list) else ()) if isinstance(n, str))
        needs[task_id] = tuple(dict.fromkeys(n for n in known if n in tasks and n != task_id))
    ids = tuple(tasks)
    return TaskGraph(ids, {task_id: i for i, task_id in enumerate(ids)}, tasks, manifest_index, needs)


def stages(graph: TaskGraph) -> dict[str, int]:
    """Longest-path depth of each task from the roots (0 = no needs).

    Kahn's algorithm, so a task in or downstream of a cycle gets no entry.
    """
    waiting = {task_id: len(needs) for task_id, needs in graph.needs.items()}
    dependents: dict[str, list[str]] = {task_id: [] for task_id in graph.ids}
    for task_id, needs in graph.needs.items():
        for need in needs:
            dependents[need].append(task_id)
    depth = {task_id: 0 for task_id in graph.ids if not waiting[task_id]}
    ready = list(depth)
    while ready:
        task_id = ready.pop()
        for dependent in dependents[task_id]:
            depth[dependent] = max(depth.get(dependent, 0), depth[task_id] + 1)
            waiting[dependent] -= 1
            if not waiting[dependent]:
                ready.append(dependent)
    return depth


def ordered(graph: TaskGraph, depth: Mapping[str, int]) -> list[str]:
    """Task ids by stage, then manifest order (a topological order)."""
    return sorted(depth, key=lambda task_id: (depth[task_id], graph.position[task_id]))


def topological_order(doc: Any) -> list[str]:
    """Task ids in the order they can start: by stage, then manifest order."""
    graph = read_graph(doc)
    return ordered(graph, stages(graph))


def ancestor_masks(graph: TaskGraph) -> dict[str, int]:
    """Each task's transitive needs as a bit set over ``graph.position``.

    Bit sets keep this O(edges x tasks / 64) in time and a few MB for 5,000
    tasks, where sets of ids would take O(tasks^2) memory for a long chain.
    """
    depth = stages(graph)
    masks: dict[str, int] = {}
    for task_id in ordered(graph, depth):
        mask = 0
        for need in graph.needs[task_id]:
            mask |= masks[need] | (1 << graph.position[need])
        masks[task_id] = mask
    for task_id in graph.ids:
        if task_id not in masks:  # in or after a cycle: walk the needs
            masks[task_id] = _walk_ancestors(graph, task_id)
    return masks


def _walk_ancestors(graph: TaskGraph, start: str) -> int:
    mask = 0
    stack = list(graph.needs[start])
    while stack:
        task_id = stack.pop()
        bit = 1 << graph.position[task_id]
        if not mask & bit:
            mask |= bit
            stack.extend(graph.needs[task_id])
    return mask


_BITS = bytes.maketrans(b"01", b"\x00\x01")


def ids_in(graph: TaskGraph, mask: int) -> frozenset[str]:
    """The task ids whose bits are set in ``mask`` (bit i is ``graph.ids[i]``)."""
    # Lowest bit first, as bytes 0/1: compress() then picks the ids at C speed.
    selectors = bin(mask)[:1:-1].encode("ascii").translate(_BITS)
    return frozenset(itertools.compress(graph.ids, selectors))


class TransitiveNeeds(Mapping[str, frozenset[str]]):
    """Task id -> every task it needs, directly or through other tasks.

    Each set is built when first asked for: all of them together hold O(tasks^2)
    ids for a long chain, while callers usually want a few.
    """

    def __init__(self, graph: TaskGraph) -> None:
        self._graph = graph
        self._masks = ancestor_masks(graph)
        self._sets: dict[str, frozenset[str]] = {}

    def __getitem__(self, task_id: str) -> frozenset[str]:
        found = self._sets.get(task_id)
        if found is None:
            found = self._sets[task_id] = ids_in(self._graph, self._masks[task_id])
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)


def transitive_needs(doc: Any) -> Mapping[str, frozenset[str]]:
    """Each task id -> every task it needs, directly or through other tasks (a read-only mapping)."""
    return TransitiveNeeds(read_graph(doc))


def matrix_of(task: Any) -> dict[str, list[Any]]:
    """The task's ``strategy.matrix`` (key -> values), or ``{}`` when it has none."""
    strategy = task.get("strategy") if isinstance(task, dict) else None
    matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
    if not isinstance(matrix, dict):
        return {}
    return {key: values for key, values in matrix.items() if isinstance(values, list)}


def shard_count(task: Any) -> int:
    """How many shards the task runs: the product of its matrix list lengths (1 without a matrix)."""
    return math.prod(len(values) for values in matrix_of(task).values())


def matrix_shards(task: Any) -> list[dict[str, Any]]:
    """One ``matrix`` dict per shard: the cartesian product in sorted key order, then value order.

    ``{b: [x, y], a: [1, 2]}`` gives a1 bx, a1 by, a2 bx, a2 by. Keys are sorted because
    the stored snapshot (canonical JSON, like PostgreSQL's jsonb) does not keep the order
    they were written in; sorting gives the same shards from a file and from the server.
    A task without a matrix has one shard, ``{}``.
    """
    matrix = matrix_of(task)
    keys = sorted(matrix, key=lambda key: key.encode("utf-16-be"))
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*(matrix[k] for k in keys))]
