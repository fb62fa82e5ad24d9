"""The built-in task packages (namespace ``mc``, version 1), and the list the registry loads.

mc/http and mc/shell live in their own modules; the small ones are here.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import inspect
import json
import time
from typing import Any

from workflows.manifest import Problem

from .base import USD_PER_SECOND, Cost, InputInvalid, StepContext, StepFailed, TaskPackage, slot_costs
from .builtin_http import HttpPackage
from .builtin_shell import ShellPackage

#: What an mc/python ``callable`` looks like; the function may not start with "_".
CALLABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z][A-Za-z0-9_]*$"


class EchoPackage(TaskPackage):
    namespace = "mc"
    name = "echo"
    version = "1"
    description = "Returns its message unchanged: a step for wiring, demos and tests."
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["message"],
        "properties": {"message": {"description": "Any JSON value; it becomes the output 'message'."}},
    }
    output_keys = ("message",)
    cost = slot_costs(0.01)
    example = """\
- id: greet
  uses: pkg:mc/echo@1
  with:
    message: hello, world
"""

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        if "message" not in with_:
            raise InputInvalid("mc/echo needs a 'message'", details=self.input_problems(with_))
        return {"message": with_["message"]}


class SleepPackage(TaskPackage):
    namespace = "mc"
    name = "sleep"
    version = "1"
    description = "Waits the given number of seconds (at most an hour), then succeeds."
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600}},
    }
    output_keys = ("slept",)
    cost = slot_costs(1.0)
    example = """\
- id: wait
  uses: pkg:mc/sleep@1
  with:
    seconds: 2.5
"""

    def estimate(self, with_: dict[str, Any], resource_class: str) -> Cost:
        seconds = with_.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            return super().estimate(with_, resource_class)
        rate = USD_PER_SECOND.get(resource_class, USD_PER_SECOND["small"])
        return Cost(float(seconds), seconds * rate)

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/sleep needs 'seconds', a number from 0 to 3600", details=problems)
        seconds = with_["seconds"]
        if seconds > ctx.timeout_seconds:
            # A worker's soft time limit stops the step at timeout_seconds; half a second
            # later, this stops it where no worker does (a direct call).
            time.sleep(ctx.timeout_seconds + 0.5)
            raise StepFailed(f"timed out after {ctx.timeout_seconds} s (asked to sleep {seconds} s)")
        time.sleep(seconds)
        return {"slept": seconds}


class FailPackage(TaskPackage):
    namespace = "mc"
    name = "fail"
    version = "1"
    description = (
        "Fails (retryably) on attempts 1 to 'times', then succeeds; without 'times' it always fails. "
        "For testing retries and compensation."
    )
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "times": {"type": "integer", "minimum": 0, "description": "How many attempts fail."},
            "message": {"type": "string", "maxLength": 2000, "description": "The failure message."},
        },
    }
    output_keys = ("attempts",)
    cost = slot_costs(0.01)
    example = """\
- id: flaky
  uses: pkg:mc/fail@1
  with:
    times: 2
    message: simulated outage
  retries: 2
"""

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/fail got invalid input", details=problems)
        times = with_.get("times")
        if times is None or ctx.attempt <= times:
            message = with_.get("message") or f"failed on purpose (attempt {ctx.attempt})"
            raise StepFailed(message, retryable=True)
        return {"attempts": ctx.attempt}


class PythonPackage(TaskPackage):
    namespace = "mc"
    name = "python"
    version = "1"
    description = (
        "Calls function(**args) from an allowed module (MC_PYTHON_ALLOWED_MODULES). "
        "A dict result is the outputs; any other JSON value becomes {result: value}."
    )
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["callable"],
        "properties": {
            "callable": {"type": "string", "pattern": CALLABLE_PATTERN, "description": "module.path:function"},
            "args": {"type": "object", "description": "Keyword arguments of the call."},
        },
    }
    output_keys = None  # whatever the function returns
    cost = slot_costs(0.1)
    example = """\
- id: add
  uses: pkg:mc/python@1
  strategy:
    matrix:
      n: [1, 2, 3]
  with:
    callable: executions.packages.samples:add
    args:
      a: ${{ matrix.n }}
      b: 10
- id: total
  uses: pkg:mc/python@1
  needs: [add]
  with:
    callable: executions.packages.samples:sum_shards
    args:
      values: ${{ steps.add.outputs.shards }}
"""

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/python got invalid input", details=problems)
        reference: str = with_["callable"]
        args: dict[str, Any] = with_.get("args", {})
        function = _allowed_function(reference, ctx.settings.python_allowed_modules)
        try:
            inspect.signature(function).bind(**args)
        except TypeError as error:
            raise InputInvalid(f"cannot call {reference} with arguments {sorted(args)}: {error}") from error
        ctx.log(f"calling {reference}")
        result = function(**args)
        outputs = result if isinstance(result, dict) else {"result": result}
        try:
            # Round-trip: outputs must be plain JSON (tuples become lists, keys strings).
            plain: dict[str, Any] = json.loads(json.dumps(outputs, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise StepFailed(f"{reference} returned a value that is not JSON: {error}", retryable=False) from error
        return plain


def _allowed_function(reference: str, allowed_modules: tuple[str, ...]) -> Any:
    """The function ``module:name`` names, if its module is allowed and it is defined there."""
    module_name, _, function_name = reference.partition(":")
    if module_name not in allowed_modules:
        allowed = ", ".join(allowed_modules) or "none"
        raise InputInvalid(
            f"module {module_name!r} is not allowed for mc/python (allowed: {allowed}; "
            "operators set MC_PYTHON_ALLOWED_MODULES)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputInvalid(f"cannot import {module_name!r}: {error}") from error
    function = getattr(module, function_name, None)
    # Only functions defined in the module itself: an allowed module must not become a
    # door to whatever it imported (os.system, subprocess.run ...).
    if not inspect.isfunction(function) or function.__module__ != module.__name__:
        raise InputInvalid(f"{reference!r} is not a function defined in {module_name}")
    return function


class StoragePutPackage(TaskPackage):
    namespace = "mc"
    name = "storage-put"
    version = "1"
    description = "Stores content as a content-addressed artifact and outputs its reference."
    input_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["content"],
        "properties": {
            "content": {"description": "A string (text or base64), or any JSON value, stored as compact JSON."},
            "content_type": {"type": "string", "minLength": 1, "maxLength": 255},
            "encoding": {"enum": ["utf-8", "base64"], "description": "How a string content is turned into bytes."},
        },
    }
    output_keys = ("ref", "size", "content_type")
    side_effects = True
    cost = slot_costs(0.2)
    example = """\
- id: save
  uses: pkg:mc/storage-put@1
  with:
    content:
      report: ready
      rows: 3
    content_type: application/json
"""

    def check_input(self, with_: Any, *, allow_expressions: bool = False) -> list[Problem]:
        problems = super().check_input(with_, allow_expressions=allow_expressions)
        if isinstance(with_, dict) and with_.get("encoding") == "base64":
            content = with_.get("content")
            literal = not (allow_expressions and isinstance(content, str) and "${{" in content)
            if literal and not isinstance(content, str):
                problems.append(Problem("/content", "base64 content must be a string"))
        return problems

    def run(self, ctx: StepContext, with_: dict[str, Any]) -> dict[str, Any]:
        problems = self.input_problems(with_)
        if problems:
            raise InputInvalid("mc/storage-put got invalid input", details=problems)
        data, default_type = _content_bytes(with_["content"], with_.get("encoding", "utf-8"))
        content_type = with_.get("content_type") or default_type
        ref = ctx.artifacts.put(data, content_type=content_type)
        ctx.log(f"stored {len(data)} bytes as {ref}")
        return {"ref": ref, "size": len(data), "content_type": content_type}


def _content_bytes(content: Any, encoding: str) -> tuple[bytes, str]:
    """The bytes to store and the content type they have unless one is given."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True), "application/octet-stream"
        except (binascii.Error, ValueError) as error:
            raise InputInvalid(f"content is not valid base64: {error}") from error
    if isinstance(content, str):
        return content.encode("utf-8"), "text/plain; charset=utf-8"
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8"), "application/json"


#: The built-in package classes, in the order docs list them.
BUILTIN_PACKAGES: tuple[type[TaskPackage], ...] = (
    EchoPackage,
    SleepPackage,
    FailPackage,
    HttpPackage,
    ShellPackage,
    PythonPackage,
    StoragePutPackage,
)

__all__ = [
    "BUILTIN_PACKAGES",
    "EchoPackage",
    "FailPackage",
    "HttpPackage",
    "PythonPackage",
    "ShellPackage",
    "SleepPackage",
    "StoragePutPackage",
]
