"""Which task packages exist: built-ins plus third-party packages from entry points.

``uses: pkg:<namespace>/<name>@<version>`` resolves to the package with that
namespace and name whose declared version equals the requested one, or starts
with it at a dot boundary (``@1`` and ``@1.4`` both match ``1.4.2``); among
several matches the highest version wins, releases before pre-releases.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any

from jsonschema import SchemaError

from workflows.manifest import Problem
from workflows.manifest.pointers import pointer
from workflows.manifest.schema import compile_pattern, schema_document

from ..expressions import expression_problems
from .base import RESOURCE_CLASSES, TaskPackage, check_package_schema, with_path

logger = logging.getLogger(__name__)

#: Entry-point group third-party distributions register their packages in.
ENTRY_POINT_GROUP = "maestro.tasks"

_REFERENCE = re.compile(r"^pkg:(?P<namespace>[^/]+)/(?P<name>[^@]+)@(?P<version>.+)$")


class UnknownPackage(LookupError):
    """No registered package matches a ``uses`` reference; the message may suggest one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _uses_pattern() -> re.Pattern[str]:
    return compile_pattern(schema_document()["$defs"]["uses"]["pattern"])


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key of a package version: numbers numerically, a release above its pre-releases."""
    release, _, prerelease = version.partition("-")
    numbers = tuple(int(part) if part.isdigit() else 0 for part in release.split("."))
    numbers += (0,) * (3 - len(numbers))
    if not prerelease:
        return (numbers, 1, ())
    identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in prerelease.split("."))
    return (numbers, 0, identifiers)


def version_matches(requested: str, declared: str) -> bool:
    """Whether ``@requested`` selects ``declared``: equal, or a prefix ending at a dot."""
    return declared == requested or declared.startswith(requested + ".")


class PackageRegistry:
    """The packages a server or CLI knows, looked up by ``uses`` reference."""

    def __init__(self, packages: Iterable[TaskPackage] = ()) -> None:
        self._by_name: dict[tuple[str, str], dict[str, TaskPackage]] = {}
        self._resolved: dict[str, TaskPackage] = {}
        for package in packages:
            self.register(package)

    def register(self, package: TaskPackage) -> None:
        """Add ``package``; ValueError if it is malformed or its exact version is taken."""
        _check_declaration(package)
        versions = self._by_name.setdefault((package.namespace, package.name), {})
        if package.version in versions:
            raise ValueError(f"{package.uses} is already registered")
        versions[package.version] = package
        self._resolved.clear()

    def packages(self) -> list[TaskPackage]:
        """Every registered package, ordered by namespace, name, then version."""
        return [
            versions[version]
            for _, versions in sorted(self._by_name.items())
            for version in sorted(versions, key=version_key)
        ]

    def resolve(self, uses: str) -> TaskPackage:
        """The package ``uses`` selects; UnknownPackage (with a did-you-mean) if none."""
        found = self._resolved.get(uses)
        if found is None:
            found = self._resolved[uses] = self._find(uses)
        return found

    def _find(self, uses: str) -> TaskPackage:
        match = _REFERENCE.match(uses) if isinstance(uses, str) else None
        if match is None:
            raise UnknownPackage(f"{uses!r} is not a package reference: expected pkg:<namespace>/<name>@<version>")
        key = (match["namespace"], match["name"])
        requested = match["version"]
        versions = self._by_name.get(key)
        if not versions:
            raise UnknownPackage(f"unknown package {uses!r}{self._suggestion(key)}")
        matching = [version for version in versions if version_matches(requested, version)]
        if not matching:
            known = ", ".join(sorted(versions, key=version_key))
            raise UnknownPackage(f"unknown version {requested!r} of pkg:{key[0]}/{key[1]}; known versions: {known}")
        return versions[max(matching, key=version_key)]

    def _suggestion(self, key: tuple[str, str]) -> str:
        """`` (did you mean 'pkg:ns/name@version'?)`` for a close namespace/name, else ``""``.

        Names are compared without versions, so ``pkg:acme/undo@1`` is not "close" to
        ``pkg:mc/echo@1`` just because both end in ``@1``.
        """
        names = {f"{ns}/{name}": (ns, name) for ns, name in self._by_name}
        close = difflib.get_close_matches(f"{key[0]}/{key[1]}", list(names), n=1)
        if not close:
            return ""
        ns, name = names[close[0]]
        latest = max(self._by_name[ns, name], key=version_key)
        return f" (did you mean 'pkg:{ns}/{name}@{latest}'?)"

    def __contains__(self, uses: object) -> bool:
        try:
            self.resolve(uses)  # type: ignore[arg-type]
        except UnknownPackage:
            return False
        return True


def _check_declaration(package: TaskPackage) -> None:
    """Reject a package whose declaration would break checks or plans later."""
    if not isinstance(package, TaskPackage):
        raise ValueError(f"{package!r} is not a TaskPackage")
    if not _uses_pattern().search(package.uses):
        raise ValueError(f"{package.uses!r} is not a valid package reference")
    missing = [rc for rc in RESOURCE_CLASSES if rc not in package.cost]
    if missing:
        raise ValueError(f"{package.uses}: no cost for resource class {', '.join(missing)}")
    try:
        check_package_schema(package.input_schema)
    except SchemaError as error:
        raise ValueError(f"{package.uses}: invalid input schema: {error.message}") from error


# --- Building the default registry --------------------------------------------------


def _candidates(loaded: Any) -> Iterator[Any]:
    """What one entry point may give: an instance, a subclass, or an iterable of those."""
    if isinstance(loaded, TaskPackage):
        yield loaded
    elif isinstance(loaded, type) and issubclass(loaded, TaskPackage):
        yield loaded()
    elif isinstance(loaded, Iterable) and not isinstance(loaded, (str, bytes, dict)):
        for item in loaded:
            yield from _candidates(item)
    else:
        raise TypeError(f"expected a TaskPackage, a TaskPackage subclass or an iterable of them, got {loaded!r}")


def load_entry_points(registry: PackageRegistry, group: str = ENTRY_POINT_GROUP) -> None:
    """Register every package the installed distributions declare in ``group``.

    A broken entry point (import error, wrong type, clash with a registered
    version ...) is logged and skipped: one bad plug-in must not take the
    registry, and with it manifest validation, down.
    """
    for entry_point in metadata.entry_points(group=group):
        try:
            packages = list(_candidates(entry_point.load()))
        except Exception:  # third-party code: anything can go wrong while importing it
            logger.exception("skipping task-package entry point %r (%s)", entry_point.name, entry_point.value)
            continue
        for package in packages:
            try:
                registry.register(package)
            except ValueError as error:
                logger.error("skipping task package from entry point %r: %s", entry_point.name, error)


def build_default_registry() -> PackageRegistry:
    """A fresh registry: the built-ins, then the ``maestro.tasks`` entry points."""
    from .builtin import BUILTIN_PACKAGES

    registry = PackageRegistry(package() for package in BUILTIN_PACKAGES)
    load_entry_points(registry)
    return registry


@functools.cache
def default_registry() -> PackageRegistry:
    """The process-wide registry (built once; entry points are read at first use)."""
    return build_default_registry()


# --- Checking a manifest ------------------------------------------------------------


def _blocks(index: int, task: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    yield ("tasks", index), task
    compensate = task.get("compensate")
    if isinstance(compensate, dict):
        yield ("tasks", index, "compensate"), compensate


def package_problems(doc: Any, registry: PackageRegistry | None = None) -> list[Problem]:
    """Extra check for validate_manifest: known packages, valid ``with``, sound expressions.

    For every task and compensate block: an unknown ``uses`` is reported at its
    ``uses``; ``with`` is checked against the package's input schema (a value
    holding an expression is only checked once rendered); then
    expression_problems. Skips what it cannot read, since the document may have
    failed the schema.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        return []
    registry = registry if registry is not None else default_registry()
    valid_uses = _uses_pattern().search
    problems = []
    for index, task in enumerate(doc["tasks"]):
        if not isinstance(task, dict):
            continue
        for prefix, block in _blocks(index, task):
            uses = block.get("uses")
            if not isinstance(uses, str) or not valid_uses(uses):
                continue  # the schema reports it
            try:
                package = registry.resolve(uses)
            except UnknownPackage as error:
                problems.append(Problem(pointer((*prefix, "uses")), error.message))
                continue
            block_with = block.get("with", {})
            if isinstance(block_with, dict):
                problems.extend(
                    with_path((*prefix, "with"), problem)
                    for problem in package.check_input(block_with, allow_expressions=True)
                )
    problems.extend(expression_problems(doc, registry=registry))
    return problems
