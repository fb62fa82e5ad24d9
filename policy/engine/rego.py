"""The thin layer over regopy (rego-cpp): compile checks, input, entrypoint queries.

rego-cpp quirks handled here, all found by measurement with regopy 1.5.2:

- ``add_module`` reports syntax errors as an s-expression, ``(error <n>:<file>|<byte
  offset>|<length> (errormsg <n>:<text>) ...)``; we turn the first one into file/line/column.
- Errors during evaluation come back either as a not-ok output whose node tree holds
  ``errormsg``/``errorcode`` nodes, or as an "ok" output whose text embeds ``(error ...)``;
  both are PolicyEvalError here, never a result.
- ``regoInputString`` stores its argument as the *JSON-escaped* string body, so strings
  are escaped before they are handed over (``regopy.Input`` does not, and corrupts
  strings holding quotes, backslashes or control characters).
- ``regoInputFloat`` keeps six decimals (1.0000001 becomes 1, 1e-7 becomes 0); an
  input with such a float goes through ``regoSetInputJSON`` instead (see set_input).
- Strings keep their JSON escapes inside rego-cpp, so ``count()`` of a string holding
  ``"``, ``\\`` or a control character counts the escape characters too (non-ASCII text
  is passed as UTF-8, not ``\\u`` escapes, so it compares and counts as written).
- Interpreters print diagnostics to the C stdout unless their log level is NONE.
- Built-in errors are undefined by default (as in OPA); we turn on strict built-in
  errors so a failing built-in fails the evaluation (and so fails closed).
"""

from __future__ import annotations

import ctypes
import json
import re
from typing import Any

from regopy import Input, Interpreter, LogLevel, NodeKind, RegoError
from regopy.rego_shared import rego as _lib
from regopy.rego_shared import (
    rego_bundle_query_entrypoint,
    rego_free_output,
    rego_get_error,
    rego_new_input,
    rego_node_get,
    rego_node_size,
    rego_node_type,
    rego_node_value,
    rego_output_node,
    rego_output_ok,
    rego_output_string,
    rego_query,
)

from .errors import BundleError, PolicyEvalError

UNDEFINED = object()
"""What an entrypoint query returns when the document is undefined (never False)."""

_MAX_INPUT_DEPTH = 64
_lib.regoSetInputJSON.restype = ctypes.c_uint32
_lib.regoSetInputJSON.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ERROR_HEAD_RE = re.compile(r"\(error (\d+):")
_ERRORMSG_RE = re.compile(r"\(errormsg \d+:([^\n]*?)\)\s*$", re.MULTILINE)


def new_interpreter() -> Interpreter:
    """An interpreter that is silent and strict about built-in errors."""
    interp = Interpreter()
    interp.log_level = LogLevel.NONE
    interp.strict_built_in_errors = True
    return interp


def check_module(path: str, source: str) -> None:
    """Parse one module on its own; raise BundleError at the first syntax error."""
    interp = new_interpreter()
    try:
        interp.add_module(path, source)
    except RegoError as exc:
        raise syntax_error(path, source, str(exc)) from exc


def check_build(modules: dict[str, str], data: dict[str, Any], entrypoint: str) -> None:
    """Compile all modules with the data, as the engine will; raise BundleError on failure."""
    try:
        compile_pack(modules, data, entrypoint)
    except RegoError as exc:
        path = _first_error_file(str(exc))
        if path in modules:
            raise syntax_error(path, modules[path], str(exc)) from exc
        raise BundleError(f"the bundle does not compile: {_first_message(str(exc))}") from exc


def compile_pack(modules: dict[str, str], data: dict[str, Any], entrypoint: str | list[str]) -> Any:
    """Build a regopy Bundle with its entrypoints (paths such as ``mc/budget`` or ``mc/budget/deny``)."""
    interp = new_interpreter()
    for path, source in modules.items():
        interp.add_module(path, source)
    interp.add_data_json(json.dumps(data))
    entrypoints = [entrypoint] if isinstance(entrypoint, str) else entrypoint
    bundle = interp.build(None, entrypoints)
    if not bundle.ok():
        raise RegoError(f"building {', '.join(entrypoints)} failed")
    return bundle


def syntax_error(path: str, source: str, error_text: str) -> BundleError:
    """Turn regopy's error s-expression into a BundleError with line and column."""
    message = _first_message(error_text)
    offset = _first_offset(error_text, path)
    if offset is None:
        return BundleError(message, path)
    raw = source.encode("utf-8")[:offset].decode("utf-8", errors="replace")
    line = raw.count("\n") + 1
    column = len(raw) - (raw.rfind("\n") + 1) + 1
    return BundleError(message, path, line, column)


def _first_message(error_text: str) -> str:
    match = _ERRORMSG_RE.search(error_text)
    return match.group(1) if match else error_text.strip().splitlines()[0] if error_text.strip() else "error"


def _first_error_file(error_text: str) -> str | None:
    match = _ERROR_HEAD_RE.search(error_text)
    if match is None:
        return None
    start = match.end()
    return error_text[start : start + int(match.group(1))]


def _first_offset(error_text: str, path: str) -> int | None:
    match = _ERROR_HEAD_RE.search(error_text)
    if match is None:
        return None
    start = match.end() + int(match.group(1))
    tail = re.match(r"\|(\d+)\|", error_text[start:])
    return int(tail.group(1)) if tail else None


def set_input(interp: Interpreter, value: Any) -> None:
    """Set ``value`` (JSON-able) as the interpreter's input document, exactly.

    The C input API is about twice as fast as parsing JSON, but rego-cpp's
    ``regoInputFloat`` keeps only six decimals (as ``std::to_string`` does); an input
    holding any float that would lose digits is handed over as JSON instead.
    """
    try:
        interp.set_input(make_input(value))
    except _NeedsJson:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        if _lib.regoSetInputJSON(interp._impl, text) != 0:
            reason = _first_message(rego_get_error(interp._impl))
            raise PolicyEvalError(f"rego-cpp refused the input: {reason}") from None


def make_input(value: Any) -> Input:
    """A rego input document for ``value`` built with the C input API, strings escaped.

    Raises _NeedsJson when a float would lose digits (see set_input).
    """
    handle = Input.__new__(Input)
    handle._impl = rego_new_input()
    failures = _add_input(handle._impl, value, 0)
    if failures:
        raise PolicyEvalError("rego-cpp refused to build the input document")
    return handle


class _NeedsJson(Exception):
    """The fast input path cannot carry this document exactly."""


def _add_input(p: Any, value: Any, depth: int) -> int:
    """Push ``value`` onto the input stack at ``p``; return how many C calls failed."""
    if depth > _MAX_INPUT_DEPTH:
        raise PolicyEvalError(f"the input is nested deeper than {_MAX_INPUT_DEPTH} levels")
    kind = type(value)
    if kind is str:
        return _lib.regoInputString(p, json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8"))
    if kind is dict:
        failures = 0
        for key, item in value.items():
            if type(key) is not str:
                raise PolicyEvalError("the input has an object key that is not a string")
            failures += _lib.regoInputString(p, json.dumps(key, ensure_ascii=False)[1:-1].encode("utf-8"))
            failures += _add_input(p, item, depth + 1)
            failures += _lib.regoInputObjectItem(p)
        return failures + _lib.regoInputObject(p, len(value))
    if kind is list or kind is tuple:
        failures = sum(_add_input(p, item, depth + 1) for item in value)
        return failures + _lib.regoInputArray(p, len(value))
    if kind is bool:
        return _lib.regoInputBoolean(p, value)
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise PolicyEvalError(f"the input holds an integer outside the 64-bit range: {value}")
        return _lib.regoInputInt(p, value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise PolicyEvalError("the input holds a NaN or infinite number")
        if float(f"{value:.6f}") != value:
            raise _NeedsJson
        return _lib.regoInputFloat(p, value)
    if value is None:
        return _lib.regoInputNull(p)
    raise PolicyEvalError(f"the input holds a {kind.__name__}, which JSON cannot carry")


def query_document(interp: Interpreter, ref: str) -> Any:
    """Evaluate ``x := <ref>`` with plain ``query`` (no build); UNDEFINED or the value."""
    try:
        impl = rego_query(interp._impl, f"x := {ref}")
    except RegoError as exc:
        raise PolicyEvalError(f"evaluation failed: {_first_message(str(exc))}") from exc
    bindings = _read_output(impl).get("bindings")
    if bindings is _UNDEFINED_OUTPUT:
        return UNDEFINED
    if not isinstance(bindings, dict) or "x" not in bindings:
        return UNDEFINED  # a missing binding means undefined, never false
    return bindings["x"]


def query_entrypoint(interp: Interpreter, bundle: Any, entrypoint: str) -> Any:
    """Evaluate one entrypoint of a built bundle; UNDEFINED or the value, or PolicyEvalError."""
    try:
        impl = rego_bundle_query_entrypoint(interp._impl, bundle._impl, entrypoint)
    except RegoError as exc:
        raise PolicyEvalError(f"evaluation failed: {_first_message(str(exc))}") from exc
    output = _read_output(impl)
    if output.get("bindings") is _UNDEFINED_OUTPUT:
        return UNDEFINED
    expressions = output.get("expressions")
    if not isinstance(expressions, list) or len(expressions) != 1:
        raise PolicyEvalError("evaluation returned an unexpected output shape")
    return expressions[0]


_UNDEFINED_OUTPUT = object()


def _read_output(impl: Any) -> dict[str, Any]:
    """Decode and free an output; ``{"bindings": _UNDEFINED_OUTPUT}`` when undefined."""
    try:
        if not rego_output_ok(impl):
            raise PolicyEvalError(f"evaluation failed: {_node_errors(rego_output_node(impl))}")
        text = rego_output_string(impl)
    finally:
        rego_free_output(impl)
    if text == "undefined":
        return {"bindings": _UNDEFINED_OUTPUT}
    try:
        output = json.loads(text)
    except json.JSONDecodeError:
        raise PolicyEvalError(f"evaluation failed: {_first_message(text)}") from None
    if not isinstance(output, dict):
        raise PolicyEvalError("evaluation returned an unexpected output shape")
    return output


def _node_errors(node: Any) -> str:
    """Collect ``code: message`` pairs from an ErrorSeq node tree."""
    found: list[str] = []

    def walk(n: Any, depth: int) -> None:
        kind = rego_node_type(n)
        if kind == NodeKind.Error:
            parts = {rego_node_type(c): _value(c) for c in _children(n)}
            text = f"{parts.get(NodeKind.ErrorCode, '')}: {parts.get(NodeKind.ErrorMessage, '')}".strip(": ")
            if text and text not in found:
                found.append(text)
            return
        if depth < 4:
            for child in _children(n):
                walk(child, depth + 1)

    walk(node, 0)
    return "; ".join(found) or "unknown error"


def _children(node: Any) -> list[Any]:
    return [rego_node_get(node, k) for k in range(rego_node_size(node))]


def _value(node: Any) -> str:
    try:
        return str(rego_node_value(node))
    except RegoError:
        return ""
