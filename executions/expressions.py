"""``${{ ... }}`` expressions in a task's ``with`` values: parse, check and render, never eval.

An expression names one value known when the step starts::

    ${{ inputs.<name> }}                        an input of the execution
    ${{ steps.<id>.outputs.<key>[.<key>...] }}  an output of a task this one needs
    ${{ matrix.<key> }}                         this shard's value of a matrix key

Whitespace inside the braces is allowed; nothing else is (no operators, no calls).
A string that is exactly one expression renders to the referenced JSON value with
its type; an expression inside a longer string is replaced by its text (strings as
they are, other values as compact JSON). Only values are rendered, never keys.

Pure Python (no Django): shared with the CLI.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workflows.manifest import Problem
from workflows.manifest.messages import did_you_mean
from workflows.manifest.pointers import pointer

from .graph import TaskGraph, ancestor_masks, matrix_of, read_graph

if TYPE_CHECKING:
    from .packages.registry import PackageRegistry

Kind = Literal["inputs", "steps", "matrix"]
Path = tuple[str | int, ...]

OPEN = "${{"
CLOSE = "}}"
#: The one output key of a matrix task: its shards' outputs, in shard order.
SHARDS_KEY = "shards"

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_STEP_ID = r"[a-z][a-z0-9_-]{0,62}"
_KEY = r"[A-Za-z0-9_-]+"
_GRAMMAR = re.compile(
    rf"(?P<kind>inputs|matrix)\.(?P<name>{_NAME})"
    rf"|steps\.(?P<step>{_STEP_ID})\.outputs\.(?P<keys>{_KEY}(?:\.{_KEY})*)"
)
_FORMS = "inputs.<name>, steps.<id>.outputs.<key> or matrix.<key>"


@dataclass(frozen=True)
class Reference:
    """What one expression names: ``kind`` and ``name`` (input, step id or matrix key).

    ``path`` is the output keys after ``steps.<id>.outputs`` (empty for inputs and matrix).
    """

    kind: Kind
    name: str
    path: tuple[str, ...] = ()
    text: str = field(default="", compare=False)  # the expression as written, for messages


class ExpressionError(Exception):
    """An expression that cannot be rendered (e.g. a value missing at run time)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ExpressionSyntaxError(ExpressionError):
    """A ``${{ ... }}`` that is not one of the allowed forms; ``text`` is the offending part."""

    def __init__(self, message: str, *, text: str) -> None:
        super().__init__(message)
        self.text = text


# --- Parsing ------------------------------------------------------------------------


def _reference(text: str) -> Reference:
    """Parse one ``${{ ... }}`` (braces included) into a Reference."""
    inner = text[len(OPEN) : -len(CLOSE)].strip()
    match = _GRAMMAR.fullmatch(inner)
    if match is None:
        raise ExpressionSyntaxError(_syntax_message(text, inner), text=text)
    if match["step"] is not None:
        return Reference("steps", match["step"], tuple(match["keys"].split(".")), text)
    kind: Kind = "inputs" if match["kind"] == "inputs" else "matrix"
    return Reference(kind, match["name"], (), text)


def _syntax_message(text: str, inner: str) -> str:
    if not inner:
        return f"empty expression {text!r}: expected {_FORMS}"
    head = inner.split(".", 1)[0]
    if head == "steps":
        expected = "steps.<id>.outputs.<key>"
    elif head in ("inputs", "matrix"):
        expected = f"{head}.<name>"
    else:
        expected = _FORMS
        hint = did_you_mean(head, ("inputs", "steps", "matrix"))
        if hint:
            return f"malformed expression {text!r}: expected {expected}{hint}"
    return f"malformed expression {text!r}: expected {expected}"


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> tuple[str | Reference, ...]:
    """Split ``text`` into literal strings and References, in order.

    Raises ExpressionSyntaxError for the first malformed or unclosed expression.
    """
    parts: list[str | Reference] = []
    start = 0
    while True:
        opening = text.find(OPEN, start)
        if opening < 0:
            break
        closing = text.find(CLOSE, opening + len(OPEN))
        if closing < 0:
            fragment = text[opening : opening + 40]
            raise ExpressionSyntaxError(f"unclosed expression {fragment!r}: missing '}}}}'", text=fragment)
        if opening > start:
            parts.append(text[start:opening])
        parts.append(_reference(text[opening : closing + len(CLOSE)]))
        start = closing + len(CLOSE)
    if start < len(text) or not parts:
        parts.append(text[start:])
    return tuple(parts)


def scan(value: Any, prefix: Path = ()) -> Iterator[tuple[Path, Reference | ExpressionSyntaxError]]:
    """Every reference in the strings of a JSON value, with its path, syntax errors included."""
    stack: list[tuple[Path, Any]] = [(prefix, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if OPEN not in item:
                continue
            try:
                parts = parse(item)
            except ExpressionSyntaxError as error:
                yield path, error
                continue
            for part in parts:
                if isinstance(part, Reference):
                    yield path, part
        elif isinstance(item, dict):
            stack.extend(((*path, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in reversed(list(enumerate(item))))


def references(value: Any) -> list[tuple[Path, Reference]]:
    """Every reference in a JSON value with the path of its string, in document order.

    Raises ExpressionSyntaxError for the first malformed expression.
    """
    found = []
    for path, item in scan(value):
        if isinstance(item, ExpressionSyntaxError):
            raise item
        found.append((path, item))
    return found


# --- Rendering ----------------------------------------------------------------------


def render(
    value: Any,
    *,
    inputs: dict[str, Any],
    steps: dict[str, dict[str, Any]],
    matrix: dict[str, Any] | None = None,
) -> Any:
    """``value`` with every expression replaced by what it names (a new value; inputs untouched).

    ``steps`` maps a step id to its outputs (for a matrix task, see
    merge_shard_outputs). Raises ExpressionError when a referenced value is missing.
    """
    if isinstance(value, str):
        if OPEN not in value:
            return value
        parts = parse(value)
        if len(parts) == 1 and isinstance(parts[0], Reference):
            return copy.deepcopy(_lookup(parts[0], inputs, steps, matrix))
        return "".join(
            part if isinstance(part, str) else _as_text(_lookup(part, inputs, steps, matrix)) for part in parts
        )
    if isinstance(value, dict):
        return {key: render(child, inputs=inputs, steps=steps, matrix=matrix) for key, child in value.items()}
    if isinstance(value, list):
        return [render(child, inputs=inputs, steps=steps, matrix=matrix) for child in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lookup(
    ref: Reference, inputs: dict[str, Any], steps: dict[str, dict[str, Any]], matrix: dict[str, Any] | None
) -> Any:
    if ref.kind == "inputs":
        if ref.name not in inputs:
            raise ExpressionError(f"{ref.text}: input {ref.name!r} has no value")
        return inputs[ref.name]
    if ref.kind == "matrix":
        if matrix is None or ref.name not in matrix:
            raise ExpressionError(f"{ref.text}: matrix key {ref.name!r} has no value in this shard")
        return matrix[ref.name]
    if ref.name not in steps:
        raise ExpressionError(f"{ref.text}: step {ref.name!r} has no outputs here")
    current: Any = steps[ref.name]
    for depth, key in enumerate(ref.path):
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            missing = ".".join(ref.path[: depth + 1])
            raise ExpressionError(f"{ref.text}: step {ref.name!r} has no output {missing!r}")
    return current


def merge_shard_outputs(shard_outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The outputs of a matrix task as later steps see them: ``{"shards": [...]}``.

    One entry per shard, each that shard's outputs, in shard order (see
    planner.matrix_shards): ``${{ steps.fan.outputs.shards }}`` is the list and
    ``${{ steps.fan.outputs.shards.0.message }}`` the first shard's message.
    """
    return {SHARDS_KEY: list(shard_outputs)}


# --- Checking a manifest ------------------------------------------------------------


class _Checker:
    """Checks the expressions of one manifest; see expression_problems."""

    def __init__(self, doc: dict[str, Any], registry: PackageRegistry) -> None:
        from .packages.registry import UnknownPackage  # the registry imports this module

        self.unknown_package = UnknownPackage
        self.registry = registry
        inputs = doc.get("inputs")
        self.inputs = [name for name in inputs if isinstance(name, str)] if isinstance(inputs, dict) else []
        self.graph: TaskGraph = read_graph(doc)
        self._masks: dict[str, int] | None = None

    @property
    def masks(self) -> dict[str, int]:
        if self._masks is None:  # only manifests that reference steps pay for this
            self._masks = ancestor_masks(self.graph)
        return self._masks

    def needed_mask(self, task: dict[str, Any]) -> int:
        """Bits of every task ``task`` needs transitively, from its own needs list."""
        task_id = task.get("id")
        if isinstance(task_id, str) and self.graph.tasks.get(task_id) is task:
            return self.masks[task_id]  # not a later duplicate of the id: precomputed
        mask = 0
        needs = task.get("needs")
        for need in needs if isinstance(needs, list) else ():
            if isinstance(need, str) and need in self.graph.position:
                mask |= self.masks[need] | (1 << self.graph.position[need])
        return mask

    def task_problems(self, index: int, task: dict[str, Any]) -> Iterator[Problem]:
        blocks: list[tuple[Path, Any, bool]] = [(("tasks", index, "with"), task.get("with"), False)]
        compensate = task.get("compensate")
        if isinstance(compensate, dict):
            blocks.append((("tasks", index, "compensate", "with"), compensate.get("with"), True))
        for prefix, block, in_compensation in blocks:
            if not isinstance(block, dict):
                continue
            for path, item in scan(block, prefix):
                if isinstance(item, ExpressionSyntaxError):
                    yield Problem(pointer(path), item.message)
                    continue
                message = self.reference_problem(task, item, in_compensation)
                if message:
                    yield Problem(pointer(path), message)

    def reference_problem(self, task: dict[str, Any], ref: Reference, in_compensation: bool) -> str | None:
        if ref.kind == "inputs":
            if ref.name not in self.inputs:
                return f"unknown input {ref.name!r}{did_you_mean(ref.name, self.inputs)}"
            return None
        if ref.kind == "matrix":
            return _matrix_problem(task, ref, in_compensation)
        return self.step_problem(task, ref, in_compensation)

    def step_problem(self, task: dict[str, Any], ref: Reference, in_compensation: bool) -> str | None:
        task_id = task.get("id") if isinstance(task.get("id"), str) else "?"
        if ref.name not in self.graph.position:
            return f"unknown step {ref.name!r}{did_you_mean(ref.name, self.graph.ids)}"
        if ref.name == task_id and not in_compensation:
            return f"task {task_id!r} cannot use its own outputs (only its compensate block can)"
        own = ref.name == task_id
        if not own and not self.needed_mask(task) & (1 << self.graph.position[ref.name]):
            return f"step {ref.name!r} is not among the needs of task {task_id!r}; add it to needs"
        return self.output_problem(ref)

    def output_problem(self, ref: Reference) -> str | None:
        task = self.graph.tasks[ref.name]
        if matrix_of(task):
            if ref.path[0] == SHARDS_KEY:
                return None
            return (
                f"step {ref.name!r} is a matrix task: its outputs are 'shards', one entry per shard "
                f"(e.g. steps.{ref.name}.outputs.shards.0.{ref.path[0]})"
            )
        uses = task.get("uses")
        if not isinstance(uses, str):
            return None
        try:
            package = self.registry.resolve(uses)
        except self.unknown_package:
            return None  # reported at that task's uses
        keys = package.output_keys
        if keys is None or ref.path[0] in keys:
            return None
        listed = ", ".join(keys) or "none"
        hint = did_you_mean(ref.path[0], keys)
        return f"step {ref.name!r} ({package.uses}) has no output {ref.path[0]!r}{hint}; its outputs are: {listed}"


def _matrix_problem(task: dict[str, Any], ref: Reference, in_compensation: bool) -> str | None:
    matrix = matrix_of(task)
    task_id = task.get("id")
    if in_compensation:
        return f"{ref.text!r} has no value in a compensate block: it runs once for the whole task, not per shard"
    if not matrix:
        return f"task {task_id!r} has no strategy.matrix, so {ref.text!r} has no value"
    if ref.name not in matrix:
        return f"unknown matrix key {ref.name!r}{did_you_mean(ref.name, matrix)}"
    return None


def expression_problems(doc: Any, *, registry: PackageRegistry | None = None) -> list[Problem]:
    """Every problem with the expressions in the tasks' and compensations' ``with`` blocks.

    Unknown inputs, steps and matrix keys (a compensate block has none); steps that
    are not among the task's transitive needs (a compensate block may also use its
    own task's outputs); outputs a package does not declare, or anything but
    ``shards`` of a matrix task; malformed syntax. Each Problem points at
    the string holding the expression. Skips what it cannot read.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        return []
    if registry is None:
        from .packages.registry import default_registry

        registry = default_registry()
    checker = _Checker(doc, registry)
    return [
        problem
        for index, task in enumerate(doc["tasks"])
        if isinstance(task, dict)
        for problem in checker.task_problems(index, task)
    ]
