"""Rules JSON Schema cannot express: unique ids, known needs, no cycles, limits, inputs.

Every check here runs on documents that may have failed the schema, so each one
skips what it cannot read (a task that is not an object, an id that is not a
string ...) instead of failing: the schema already reports those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from .constants import MAX_SHARDS, MAX_TASKS, MAX_WITH_DEPTH, TYPE_NOUNS
from .errors import Problem
from .messages import did_you_mean
from .pointers import pointer

_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER


@dataclass(frozen=True)
class _Task:
    """The parts of one task the graph checks need, taken from a possibly invalid doc."""

    index: int
    id: str
    needs: tuple[tuple[int, str], ...]  # (position in the needs list, task id)


def _read_tasks(tasks: list[Any]) -> list[_Task]:
    """Tasks that have a string id, with their string needs; the rest is skipped."""
    found = []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("id"), str):
            continue
        needs = task.get("needs")
        pairs = enumerate(needs) if isinstance(needs, list) else ()
        found.append(_Task(index, task["id"], tuple((k, n) for k, n in pairs if isinstance(n, str))))
    return found


def _need_path(task: _Task, position: int) -> str:
    return pointer(("tasks", task.index, "needs", position))


def _duplicate_ids(tasks: list[_Task]) -> tuple[dict[str, _Task], list[Problem]]:
    """Index tasks by id (the first definition wins) and report later duplicates."""
    by_id: dict[str, _Task] = {}
    problems = []
    for task in tasks:
        first = by_id.setdefault(task.id, task)
        if first is not task:
            problems.append(
                Problem(
                    pointer(("tasks", task.index, "id")),
                    f"duplicate task id {task.id!r}, first defined at /tasks/{first.index}",
                )
            )
    return by_id, problems


def _bad_needs(tasks: list[_Task], by_id: dict[str, _Task]) -> Iterator[Problem]:
    for task in tasks:
        for position, need in task.needs:
            if need == task.id:
                yield Problem(_need_path(task, position), f"task {task.id!r} needs itself")
            elif need not in by_id:
                hint = did_you_mean(need, by_id)
                yield Problem(_need_path(task, position), f"needs unknown task {need!r}{hint}")


def _edges(by_id: dict[str, _Task]) -> dict[str, list[tuple[int, str]]]:
    """Task id -> (needs position, needed id), known ids only, no self-loops, no repeats."""
    edges: dict[str, list[tuple[int, str]]] = {}
    for task_id, task in by_id.items():
        targets: dict[str, int] = {}
        for position, need in task.needs:
            if need in by_id and need != task_id:
                targets.setdefault(need, position)
        edges[task_id] = [(position, need) for need, position in targets.items()]
    return edges


def _cycles(by_id: dict[str, _Task]) -> Iterator[Problem]:
    """Report each back edge of an iterative depth-first search as one cycle.

    Iterative so that a 5,000-task chain cannot exhaust the recursion limit. The
    path is the needs entry that closes the cycle.
    """
    edges = _edges(by_id)
    done: set[str] = set()
    for root in by_id:
        if root in done:
            continue
        trail = [root]  # the current path from root
        on_trail = {root: 0}  # id -> index in trail
        stack = [iter(edges[root])]
        while stack:
            node = trail[-1]
            for position, need in stack[-1]:
                if need in on_trail:
                    cycle = " -> ".join([*trail[on_trail[need] :], need])
                    yield Problem(_need_path(by_id[node], position), f"dependency cycle: {cycle}")
                elif need not in done:
                    on_trail[need] = len(trail)
                    trail.append(need)
                    stack.append(iter(edges[need]))
                    break
            else:
                stack.pop()
                del on_trail[trail.pop()]
                done.add(node)


def _depth(value: Any) -> int:
    """Container nesting depth of ``value`` (``{}`` is 1, a scalar 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_WITH_DEPTH:
            break  # the answer is already "too deep"; how deep does not matter
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _with_depths(tasks: list[Any]) -> Iterator[Problem]:
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        blocks: list[tuple[tuple[str | int, ...], Any]] = [(("tasks", index, "with"), task.get("with"))]
        if isinstance(task.get("compensate"), dict):
            blocks.append((("tasks", index, "compensate", "with"), task["compensate"].get("with")))
        for path, block in blocks:
            if isinstance(block, (dict, list)) and _depth(block) > MAX_WITH_DEPTH:
                yield Problem(pointer(path), f"'with' is nested more than {MAX_WITH_DEPTH} levels deep")


def _shard_counts(tasks: list[Any]) -> Iterator[Problem]:
    """A matrix may not expand to more than MAX_SHARDS shards (the product of its list lengths)."""
    for index, task in enumerate(tasks):
        strategy = task.get("strategy") if isinstance(task, dict) else None
        matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
        if not isinstance(matrix, dict):
            continue
        shards = 1
        for values in matrix.values():
            if isinstance(values, list):
                shards *= len(values)
        if shards > MAX_SHARDS:
            sizes = " x ".join(str(len(v)) for v in matrix.values() if isinstance(v, list))
            yield Problem(
                pointer(("tasks", index, "strategy", "matrix")),
                f"the matrix gives {shards} shards ({sizes}); a task may have at most {MAX_SHARDS}",
            )


def task_problems(tasks: list[Any]) -> list[Problem]:
    """Unique ids, known needs, no self-needs, no cycles, with-block depth, shard count, task count."""
    problems = []
    if len(tasks) > MAX_TASKS:
        problems.append(Problem("/tasks", f"a manifest may have at most {MAX_TASKS} tasks, got {len(tasks)}"))
    readable = _read_tasks(tasks[:MAX_TASKS])
    by_id, duplicates = _duplicate_ids(readable)
    problems.extend(duplicates)
    problems.extend(_bad_needs(readable, by_id))
    problems.extend(_cycles(by_id))
    problems.extend(_with_depths(tasks[:MAX_TASKS]))
    problems.extend(_shard_counts(tasks[:MAX_TASKS]))
    return problems


def _input_problems(name: str, spec: dict[str, Any]) -> Iterator[Problem]:
    base = ("inputs", name)
    if spec.get("required") is True and "default" in spec:
        yield Problem(pointer((*base, "default")), "a required input cannot have a default")
    declared = spec.get("type")
    if declared not in TYPE_NOUNS or declared == "null":
        return  # the schema reports a missing or unknown type
    noun = TYPE_NOUNS[declared]
    enum = spec.get("enum") if isinstance(spec.get("enum"), list) else None
    for position, option in enumerate(enum or ()):
        if not _TYPE_CHECKER.is_type(option, declared):
            yield Problem(pointer((*base, "enum", position)), f"{option!r} is not {noun}")
    if "default" not in spec:
        return
    default = spec["default"]
    if not _TYPE_CHECKER.is_type(default, declared):
        yield Problem(
            pointer((*base, "default")),
            f"default {default!r} does not match the declared type: it must be {noun}",
        )
    elif enum is not None and not Draft202012Validator({"enum": enum}).is_valid(default):
        yield Problem(pointer((*base, "default")), f"default {default!r} is not one of the enum values")


def input_problems(inputs: dict[str, Any]) -> list[Problem]:
    """Defaults that contradict their input's type, enum or ``required`` flag."""
    return [
        problem
        for name, spec in inputs.items()
        if isinstance(name, str) and isinstance(spec, dict)
        for problem in _input_problems(name, spec)
    ]


def semantic_problems(doc: Any) -> list[Problem]:
    """Every semantic problem in ``doc``; nothing when it is not even an object."""
    if not isinstance(doc, dict):
        return []
    problems = []
    if isinstance(doc.get("tasks"), list):
        problems.extend(task_problems(doc["tasks"]))
    if isinstance(doc.get("inputs"), dict):
        problems.extend(input_problems(doc["inputs"]))
    return problems
