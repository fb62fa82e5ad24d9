"""The task-package contract: what a package declares, what a step gets, how it fails.

Pure Python (no Django): the CLI plans and checks manifests with the same code the
workers run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from workflows.manifest import Problem
from workflows.manifest.fastcheck import Predicate, compile_schema
from workflows.manifest.messages import translate
from workflows.manifest.pointers import pointer
from workflows.manifest.schema import ManifestValidator

RESOURCE_CLASSES: tuple[str, ...] = ("small", "medium", "large")

#: What one second of a worker slot costs, by resource class (USD). Built-in cost
#: tables are derived from it, so larger classes cost more per second.
USD_PER_SECOND: Mapping[str, float] = MappingProxyType({"small": 0.001, "medium": 0.004, "large": 0.016})

_MIB = 1024 * 1024

#: A string that is exactly one ``${{ ... }}`` (the grammar lives in executions.expressions).
_WHOLE_EXPRESSION = re.compile(r"\$\{\{(?:(?!\}\}).)*\}\}", re.DOTALL)


@dataclass(frozen=True)
class Cost:
    """Estimate for ONE attempt of one step (one shard)."""

    seconds: float
    usd: float


def slot_costs(seconds: float) -> dict[str, Cost]:
    """A cost table for work that takes ``seconds`` in any class, priced by USD_PER_SECOND."""
    return {rc: Cost(seconds, seconds * rate) for rc, rate in USD_PER_SECOND.items()}


class StepFailed(Exception):
    """Expected failure of a step, recorded cleanly rather than as a crash.

    ``retryable`` says whether another attempt could succeed (a 503, a timeout);
    ``details`` lists ``{path, message}`` for input errors.
    """

    def __init__(self, message: str, *, retryable: bool = True, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details: list[dict[str, str]] = list(details or [])

    def __str__(self) -> str:
        return self.message


class InputInvalid(StepFailed):
    """The step's ``with`` values are wrong: no attempt can succeed, so it is never retried."""

    def __init__(self, message: str, *, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, retryable=False, details=details)


def _default_shell_limits() -> Mapping[str, tuple[int, int]]:
    return MappingProxyType({"small": (60, 512 * _MIB), "medium": (600, 2048 * _MIB), "large": (3600, 8192 * _MIB)})


@dataclass(frozen=True)
class PackageSettings:
    """Operator settings the built-in packages obey (built from MC_* variables by the server)."""

    #: Hosts mc/http may call: exact names, or ``*.example.com`` for any subdomain.
    http_allowed_hosts: tuple[str, ...] = ()
    #: Modules whose functions mc/python may call (exact module names).
    python_allowed_modules: tuple[str, ...] = ("executions.packages.samples",)
    #: Bytes of stdout and of stderr mc/shell keeps.
    shell_output_limit: int = 64 * 1024
    #: (CPU seconds, address-space bytes) mc/shell grants a process, by resource class.
    shell_limits: Mapping[str, tuple[int, int]] = field(default_factory=_default_shell_limits)


class ArtifactSink(Protocol):
    """Content-addressed storage for step outputs too large or too binary for JSON."""

    def put(self, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` and return its reference, ``"sha256:<hex>"``."""
        ...


@dataclass
class StepContext:
    """What one attempt of one step (one shard) gets besides its ``with`` values."""

    execution_id: str
    step_id: str
    attempt: int  # 1-based
    resource_class: str  # small | medium | large
    timeout_seconds: int
    log: Callable[[str], None]  # appends a line to the step's log
    artifacts: ArtifactSink
    settings: PackageSettings


def has_expression(value: Any) -> bool:
    """Whether ``value`` holds a ``${{ ... }}`` expression in any string, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${{" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def is_whole_expression(value: Any) -> bool:
    """Whether ``value`` is a string that is exactly one expression (it renders to any JSON type)."""
    return isinstance(value, str) and _WHOLE_EXPRESSION.fullmatch(value) is not None


#: Keywords about a container's own shape (its keys, its length): a literal object or
#: list keeps that shape whatever the expressions inside it render to.
_STRUCTURE_KEYWORDS = frozenset(
    {
        "required",
        "additionalProperties",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "dependentRequired",
    }
)


def _waived_for_expression(error: ValidationError) -> bool:
    """Whether ``error`` may disappear once the expressions in its value are rendered."""
    instance = error.instance
    if isinstance(instance, str):
        if is_whole_expression(instance):
            return True  # renders to any type
        # Text around an expression renders to text: a type error stays real, while
        # pattern, enum, length ... can only be judged on the rendered string.
        return "${{" in instance and error.validator != "type"
    if error.validator in _STRUCTURE_KEYWORDS or error.validator == "type":
        return False  # the container itself is literal
    # A combinator (anyOf, oneOf, not, contains ...) over a value with an expression inside.
    return has_expression(instance)


class TaskPackage:
    """A versioned unit of work a task runs: ``uses: pkg:<namespace>/<name>@<version>``.

    Subclasses set the class attributes and implement ``run``. ``run`` gets fully
    rendered ``with`` values that passed ``check_input``, but should still be
    defensive; it returns the step's outputs (a JSON object) or raises StepFailed
    (retryable or not) / InputInvalid. Anything else it raises is a crash.
    """

    namespace: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: JSON Schema 2020-12 for the ``with`` object.
    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: Keys the outputs always have; None when unknown.
    output_keys: ClassVar[tuple[str, ...] | None] = None
    #: Whether running it changes something outside MC (a request, a stored object).
    side_effects: ClassVar[bool] = False
    #: Classes of data the package itself handles (added to the task's own).
    data_classes: ClassVar[tuple[str, ...]] = ()
    #: Estimate of one attempt, by resource class.
    cost: ClassVar[Mapping[str, Cost]] = MappingProxyType(slot_costs(1.0))
    #: A YAML list of tasks using the package; shown in docs/packages.md and tested to validate.
    example: ClassVar[str] = ""

    @property
    def uses(self) -> str:
        """The canonical reference, ``pkg:<namespace>/<name>@<version>``."""
        return f"pkg:{self.namespace}/{self.name}@{self.version}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uses}>"

    def estimate(self, with_: dict[str, Any], resource_class: str) -> Cost:
        """Cost of one attempt with these (rendered) values; by default the cost table."""
        return self.cost.get(resource_class) or self.cost["small"]

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        """Do the work; return the outputs or raise StepFailed / InputInvalid."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")

    def check_input(self, with_: Any, *, allow_expressions: bool = False) -> list[Problem]:
        """Problems of ``with_`` against ``input_schema``; paths are relative to ``with``.

        With ``allow_expressions`` (checking a manifest before anything is rendered),
        errors about a value that is a ``${{ ... }}`` expression, or a string holding
        one, are left out: the value is only known at run time.
        """
        if not isinstance(with_, dict):
            return [Problem("", f"'with' must be an object, got {type(with_).__name__}")]
        if self._certainly_valid(with_):
            return []
        problems: list[Problem] = []
        for error in _leaf_errors(self._input_validator.iter_errors(with_)):
            if allow_expressions and _waived_for_expression(error):
                continue
            problems.extend(translate(error))
        return problems

    @functools.cached_property
    def _certainly_valid(self) -> Predicate:
        # jsonschema costs ~20 us per task; most with blocks are valid, so ask the
        # manifest's compiled "certainly valid" predicate first (see fastcheck).
        return compile_schema(self.input_schema)

    @functools.cached_property
    def _input_validator(self) -> Any:
        # The manifest's validator class: a final ``$`` in a pattern means end of string.
        return ManifestValidator(self.input_schema)

    def input_problems(self, with_: Any) -> list[dict[str, str]]:
        """check_input as the ``details`` of an InputInvalid (``{path, message}`` dicts)."""
        return [problem.as_dict() for problem in self.check_input(with_)]


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """Errors as they are, except a combinator's error is replaced by its best sub-error.

    Package schemas may use anyOf/oneOf (the manifest schema does not); the
    sub-error usually says more than "is not valid under any of the given schemas".
    """
    for error in errors:
        if error.context and error.validator in ("anyOf", "oneOf"):
            best = best_match(error.context)
            yield best if best is not None else error
        else:
            yield error


def check_package_schema(schema: dict[str, Any]) -> None:
    """Raise jsonschema.SchemaError if ``schema`` is not a valid 2020-12 schema."""
    Draft202012Validator.check_schema(schema)


def with_path(prefix: tuple[str | int, ...], problem: Problem) -> Problem:
    """``problem`` (relative to a ``with`` block) re-rooted at ``prefix`` in the manifest."""
    return Problem(pointer(prefix) + problem.path, problem.message)
