"""Run the Rego unit tests of policy bundles on regopy (rego-cpp), without the opa binary.

A bundle directory holds ``*.rego`` modules and ``data.json`` files (OPA bundle layout).
Test rules are the ``test_*`` rules of the ``*_test.rego`` modules; each is queried as
``x := data.<package>.<rule>`` and passes only when ``x`` is bound to exactly ``true``:
undefined, ``false``, any other value or an error fails, with the reason in ``error``.

Two rego-cpp 1.5.2 faults shape this module:

* it crashes the process (SIGSEGV) on ``with input as <value>`` when the rule under test
  calls a builtin, so test modules are checked for that form first (replace parts of the
  input instead: ``with input.plan as {...}``), and by default every bundle runs in a child
  process so that any other crash becomes a failed result rather than a dead caller;
* ``Interpreter.query`` cannot read error outputs (it raises ``JSONDecodeError``), so
  queries go through the low-level ``regopy.rego_shared`` calls.

``manage.py mc_policy test`` wraps :func:`run_all`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regopy import Interpreter, LogLevel, RegoError, rego_shared

LOAD = "(load)"
"""Name of the result that reports a bundle which could not be loaded."""

_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_HEAD_RE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_WITH_INPUT_RE = re.compile(r"\bwith\s+input\s+as\b")
_STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_CHILD_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class RegoTestResult:
    """The outcome of one Rego test rule (or, named ``(load)``, of loading its bundle)."""

    package: str
    name: str
    passed: bool
    error: str | None = None


@dataclass(frozen=True)
class _TestModule:
    path: Path
    package: str
    tests: tuple[str, ...]


def run_all(bundles_root: Path, *, isolate: bool = True) -> dict[str, list[RegoTestResult]]:
    """Run the tests of every bundle directly under ``bundles_root``, keyed by directory name."""
    return {
        bundle.name: run_bundle_tests(bundle, isolate=isolate)
        for bundle in sorted(bundles_root.iterdir())
        if bundle.is_dir() and any(bundle.rglob("*.rego"))
    }


def run_bundle_tests(bundle_dir: Path, *, isolate: bool = True) -> list[RegoTestResult]:
    """Load every module and data file of ``bundle_dir`` into one interpreter and run its tests.

    With ``isolate`` (the default) the work happens in a child Python process, so a crash
    of rego-cpp fails the bundle's tests instead of killing the caller.
    """
    if not isolate:
        return _run_in_process(bundle_dir)
    return _run_in_child(bundle_dir)


def _run_in_process(bundle_dir: Path) -> list[RegoTestResult]:
    rego_files = sorted(bundle_dir.rglob("*.rego"))
    sources = {path.relative_to(bundle_dir).as_posix(): path.read_text(encoding="utf-8") for path in rego_files}
    modules = [_discover(bundle_dir / name, source) for name, source in sources.items() if name.endswith("_test.rego")]

    crash_risks = [_crash_risk(bundle_dir / name, source) for name, source in sources.items()]
    load_errors = [risk for risk in crash_risks if risk]
    interpreter = None
    if not load_errors:
        interpreter, load_errors = _load(bundle_dir, sources)
    if load_errors:
        not_run = "not run: the bundle did not load"
        return [RegoTestResult("", LOAD, False, "\n".join(load_errors))] + [
            RegoTestResult(module.package, test, False, not_run) for module in modules for test in module.tests
        ]

    assert interpreter is not None
    return [
        result
        for module in modules
        for result in _run_package(interpreter, bundle_dir, sources, module.package, module.tests)
    ]


def _discover(path: Path, source: str) -> _TestModule:
    """The package and ``test_*`` rule names of a test module, found by reading its text."""
    match = _PACKAGE_RE.search(source)
    tests = tuple(dict.fromkeys(_TEST_HEAD_RE.findall(source)))  # a rule may have several bodies
    return _TestModule(path=path, package=match.group(1) if match else "", tests=tests)


def _crash_risk(path: Path, source: str) -> str | None:
    code = "\n".join(_code_part(line) for line in source.splitlines())
    match = _WITH_INPUT_RE.search(code)  # \s+ also finds the form split over lines
    if not match:
        return None
    line = code.count("\n", 0, match.start()) + 1
    column = match.start() - (code.rfind("\n", 0, match.start()) + 1) + 1
    return (
        f"{path}:{line}:{column}: 'with input as' crashes rego-cpp 1.5.2; "
        "replace parts of the input instead ('with input.plan as {...}')"
    )


def _code_part(line: str) -> str:
    """The line with string literals blanked and its ``#`` comment removed (columns kept)."""
    blanked = _STRING_RE.sub(lambda match: " " * len(match.group()), line)
    return blanked.split("#", 1)[0]


def _load(bundle_dir: Path, sources: dict[str, str]) -> tuple[Interpreter, list[str]]:
    interpreter = Interpreter()
    interpreter.log_level = LogLevel.NONE  # errors come back in RegoError; do not print them
    errors: list[str] = []
    for name, source in sources.items():
        try:
            interpreter.add_module(name, source)
        except RegoError as exc:
            errors.extend(_format_errors(str(exc), bundle_dir, sources))
    merged: dict[str, Any] = {}
    for path in sorted(bundle_dir.rglob("data.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
            continue
        # As in an OPA bundle, a data.json in a sub-directory sits under that directory's path.
        for part in reversed(path.parent.relative_to(bundle_dir).parts):
            document = {part: document}
        errors.extend(f"{path}: {conflict}" for conflict in _merge(merged, document))
    # One call: rego-cpp 1.5.2 does not merge documents added separately under a shared key.
    try:
        interpreter.add_data_json(json.dumps(merged))
    except RegoError as exc:
        errors.extend(_format_errors(str(exc), bundle_dir, sources))
    return interpreter, errors


def _merge(into: dict[str, Any], document: Any, path: str = "") -> list[str]:
    """Deep-merge ``document`` (an object) into ``into``; the conflicting paths, if any."""
    if not isinstance(document, dict):
        return [f"data {path or '/'} is not an object"]
    conflicts = []
    for key, value in document.items():
        if isinstance(into.get(key), dict) and isinstance(value, dict):
            conflicts.extend(_merge(into[key], value, f"{path}/{key}"))
        elif key in into:
            conflicts.append(f"data {path}/{key} is defined twice")
        else:
            into[key] = value
    return conflicts


_UNDEFINED = object()


def _run_package(
    interpreter: Interpreter, bundle_dir: Path, sources: dict[str, str], package: str, tests: tuple[str, ...]
) -> list[RegoTestResult]:
    """Query the whole package once (one compile); query test by test only if that fails.

    An undefined rule is absent from the package's value, so a missing test is undefined.
    """
    values, error = _evaluate(interpreter, f"x := data.{package}", bundle_dir, sources)
    if error is None and isinstance(values, dict):
        return [_judge(package, test, values.get(test, _UNDEFINED), None) for test in tests]
    return [
        _judge(package, test, *_evaluate(interpreter, f"x := data.{package}.{test}", bundle_dir, sources))
        for test in tests
    ]


def _judge(package: str, test: str, value: Any, error: str | None) -> RegoTestResult:
    if error is not None:
        return RegoTestResult(package, test, False, error)
    if value is _UNDEFINED:
        return RegoTestResult(package, test, False, "undefined (a body expression was false or undefined)")
    if value is not True:
        return RegoTestResult(package, test, False, f"evaluated to {json.dumps(value)[:200]}, not true")
    return RegoTestResult(package, test, True)


def _evaluate(
    interpreter: Interpreter, query: str, bundle_dir: Path, sources: dict[str, str]
) -> tuple[Any, str | None]:
    """(value of ``x`` or _UNDEFINED, None), or (None, error message)."""
    try:
        ok, text = _query(interpreter, query)
    except RegoError as exc:
        return None, "\n".join(_format_errors(str(exc), bundle_dir, sources))
    if not ok or text.startswith("("):
        detail = "\n".join(_format_errors(text, bundle_dir, sources)) if text.startswith("(") else ""
        return None, f"evaluation error: {detail or 'rego-cpp gave no detail (a rule conflict?)'}"
    if text == "undefined":
        return _UNDEFINED, None
    try:
        bindings = json.loads(text).get("bindings", {})
    except (json.JSONDecodeError, AttributeError):
        return None, f"unreadable result from rego-cpp: {text[:200]}"
    return bindings.get("x", _UNDEFINED), None


def _query(interpreter: Interpreter, query: str) -> tuple[bool, str]:
    """(ok, output text) of a query; the text is JSON, ``undefined`` or an error S-expression."""
    output = rego_shared.rego_query(interpreter._impl, query)
    try:
        return rego_shared.rego_output_ok(output), rego_shared.rego_output_string(output)
    finally:
        rego_shared.rego_free_output(output)


_ERROR_RE = re.compile(rb"\(error(?: (\d+):|(?=\s))")
_ERRORMSG_RE = re.compile(rb"\(errormsg (\d+):")


def _format_errors(text: str, bundle_dir: Path, sources: dict[str, str]) -> list[str]:
    """``path:line:column: message`` lines from rego-cpp's error S-expression.

    An error reads ``(error 9:bad.rego|39|2 (errormsg 27:Invalid assignment operator) ...)``:
    length-prefixed source name, byte offset and length, then the length-prefixed message.
    """
    raw = text.encode("utf-8")
    starts = list(_ERROR_RE.finditer(raw))
    if not starts:
        return [text.strip() or "unknown rego-cpp error"]
    errors = []
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(raw)
        location = ""
        if start.group(1):
            name_start = start.end()
            name = raw[name_start : name_start + int(start.group(1))].decode("utf-8", "replace")
            offset_match = re.match(rb"\|(\d+)\|", raw[name_start + int(start.group(1)) :])
            location = str(bundle_dir / name)
            if offset_match and name in sources:
                line, column = _line_column(sources[name].encode("utf-8"), int(offset_match.group(1)))
                location = f"{location}:{line}:{column}"
        message_match = _ERRORMSG_RE.search(raw, start.end(), end)
        message = "error"
        if message_match:
            message_start = message_match.end()
            message = raw[message_start : message_start + int(message_match.group(1))].decode("utf-8", "replace")
        errors.append(f"{location}: {message}" if location else message)
    return errors


def _line_column(source: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    before = source[:offset]
    line_start = before.rfind(b"\n") + 1
    return before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1


def _run_in_child(bundle_dir: Path) -> list[RegoTestResult]:
    project_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root), os.environ.get("PYTHONPATH")]))}
    # The command is this interpreter running this module: no untrusted input reaches it.
    completed = subprocess.run(  # noqa: S603
        _child_command(bundle_dir),
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root,
        timeout=_CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode == 0 and lines:
        # The results are the last line: rego-cpp may have printed before them.
        return [RegoTestResult(**item) for item in json.loads(lines[-1])]
    if completed.returncode < 0:
        reason = f"rego-cpp crashed ({signal.Signals(-completed.returncode).name}) while running the bundle"
    else:
        reason = f"the test runner failed (exit {completed.returncode}): {completed.stderr.strip()[-2000:]}"
    sources = {path: path.read_text(encoding="utf-8") for path in sorted(bundle_dir.rglob("*_test.rego"))}
    modules = [_discover(path, source) for path, source in sources.items()]
    return [RegoTestResult("", LOAD, False, reason)] + [
        RegoTestResult(module.package, test, False, f"not run: {reason}") for module in modules for test in module.tests
    ]


def _child_command(bundle_dir: Path) -> list[str]:
    return [sys.executable, "-m", "policy.testing", str(bundle_dir.resolve())]


def _main(argv: list[str]) -> int:
    """Child-process entry: run one bundle in this process and print its results as JSON."""
    results = _run_in_process(Path(argv[0]))
    sys.stdout.write("\n" + json.dumps([asdict(result) for result in results]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
