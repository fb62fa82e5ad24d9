"""``maestro new workflow|service NAME``: a new repository from the scaffolds in ``templates/``.

A scaffold is the directory ``templates/<kind>/``: every ``*.tmpl`` file in it becomes
one file of the new repository, its path and text rendered by ``render``:

* ``{{ key }}`` (a lower-case key of the context, ``scaffold_context``) is replaced by
  its value, and only that: ``${{ inputs.name }}`` in a workflow and ``${VAR}`` in a
  shell script are left alone, and an unknown key is an error;
* the ``.tmpl`` suffix is dropped and a leading ``dot-`` of a name becomes ``.``
  (``dot-gitignore.tmpl`` is ``.gitignore``), since package data globs skip dot files.

The values are checked names and versions, never free text, so nothing needs escaping.
``requirements.txt`` pins what is installed here (``pinned_requirements``). See
docs/templates.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

KINDS = ("workflow", "service")
#: The directory of files every kind gets.
COMMON = "common"

#: Repository names: lower-case letters, digits and dashes, starting with a letter and
#: ending with a letter or digit, 3 to 63 characters. At least 3 because the name is the
#: workflow's name too (manifest names are 3 to 64 characters); a letter first so that a
#: service's name is also a Python module name once dashes become underscores.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,61}[a-z0-9]")
NAME_MAX_LENGTH = 63

#: What the generated CI runs, pinned (with what they need) to the versions installed here.
CI_TOOLS = ("maestro-conductor", "pytest", "regopy", "cyclonedx-bom", "detect-secrets")
#: A service's CI also builds its package metadata (entry points) with setuptools.
SERVICE_TOOLS = ("setuptools",)
#: Versions the scaffolds were tested with, pinned when a tool is not installed where
#: ``maestro new`` runs (a server image without the dev tools, for instance).
FALLBACK_PINS = {
    "pytest": "9.2.0",
    "regopy": "1.5.2",
    "cyclonedx-bom": "7.5.0",
    "detect-secrets": "1.5.0",
    "setuptools": "65.5.0",
}

_PLACEHOLDER = re.compile(r"(?<!\$)\{\{\s*([a-z_]+)\s*\}\}")
_SUFFIX = ".tmpl"
_DOT_PREFIX = "dot-"
_EXECUTABLE = (".sh",)


class ScaffoldError(Exception):
    """The scaffold cannot be created: a bad name or kind, or a target that is in the way."""


@dataclass(frozen=True)
class TemplateFile:
    """One file of a scaffold: where it goes in the new repository (rendered) and its text."""

    path: PurePosixPath
    text: str
    executable: bool


def scaffold_create(kind: str, name: str, directory: Path, *, force: bool = False) -> Path:
    """Create the repository ``directory/name`` from scaffold ``kind``; its path.

    Raises ScaffoldError for an unknown kind, an invalid name, or a target that exists
    (without ``force``) or that is not a plain directory. With ``force`` the scaffold's
    files overwrite those of an existing repository; other files there are kept.
    """
    kind_check(kind)
    name_check(name, kind=kind)
    target = Path(directory) / name
    files = scaffold_files(kind, scaffold_context(kind, name))
    created = _claim(target, force=force)
    try:
        for file in files:
            _write(target, file)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def kind_check(kind: str) -> None:
    """ScaffoldError unless ``kind`` is one of KINDS."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown template {kind!r}: expected one of {', '.join(KINDS)}")


def name_check(name: str, *, kind: str = "workflow") -> None:
    """ScaffoldError naming what is wrong with ``name``, if anything.

    A service's module (``name`` with ``_`` for ``-``) must not shadow a module that is
    importable already: its CI puts ``src/`` first on the path, so a service called
    ``policy`` or ``json`` would replace MC's or Python's own.
    """
    if not isinstance(name, str) or not name:
        raise ScaffoldError("the name is empty: give lower-case letters, digits and dashes, e.g. nightly-report")
    if "/" in name or "\\" in name or name in (".", "..") or "." in name:
        raise ScaffoldError(f"invalid name {name!r}: no path separators or dots; the name is one directory")
    if len(name) > NAME_MAX_LENGTH:
        raise ScaffoldError(f"invalid name {name[:20]!r}...: {len(name)} characters, at most {NAME_MAX_LENGTH}")
    if len(name) < 3:
        raise ScaffoldError(f"invalid name {name!r}: at least 3 characters (it is the workflow's name too)")
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"invalid name {name!r}: use lower-case letters, digits and dashes, "
            "starting with a letter and not ending with a dash"
        )
    module = module_name(name)
    if kind == "service" and (module in sys.stdlib_module_names or importlib.util.find_spec(module) is not None):
        raise ScaffoldError(f"invalid name {name!r}: its module {module!r} would shadow an installed module")


def module_name(name: str) -> str:
    """The Python module of a service: its name with underscores for dashes."""
    return name.replace("-", "_")


def scaffold_context(kind: str, name: str) -> dict[str, str]:
    """The values a scaffold's placeholders take for repository ``name``."""
    tools = CI_TOOLS + (SERVICE_TOOLS if kind == "service" else ())
    pins = pinned_requirements(tools)
    return {
        "name": name,
        "module": module_name(name),
        "kind": kind,
        "requirements": "\n".join(pins),
        "maestro_version": _installed_version("maestro-conductor") or "0.1.0",
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def scaffold_files(kind: str, context: dict[str, str]) -> list[TemplateFile]:
    """Every file of scaffold ``kind``, rendered with ``context``, in path order."""
    kind_check(kind)
    package = resources.files("templates")
    files: dict[PurePosixPath, TemplateFile] = {}
    for layer in (COMMON, kind):  # a kind's file replaces a common one of the same path
        for relative, source in _walk(package.joinpath(layer), PurePosixPath()):
            path = PurePosixPath(*(_output_part(render(part, context)) for part in relative.parts))
            text = render(source.read_text(encoding="utf-8"), context)
            files[path] = TemplateFile(path, text, path.suffix in _EXECUTABLE)
    if not files:
        raise ScaffoldError(f"template {kind!r} has no files: is the templates package installed with its data?")
    return [files[path] for path in sorted(files)]


def render(text: str, context: dict[str, str]) -> str:
    """``text`` with every ``{{ key }}`` replaced by ``context[key]``; KeyError for an unknown key."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in context:
            raise KeyError(f"the template uses {{{{ {key} }}}}, which the scaffold does not define")
        return context[key]

    return _PLACEHOLDER.sub(value, text)


def pinned_requirements(roots: Iterable[str]) -> list[str]:
    """``name==version`` lines for ``roots`` and everything they require, as installed here.

    Requirements are followed through the installed distributions' metadata (markers
    evaluated for this interpreter, requested extras included). A root that is not
    installed is pinned to FALLBACK_PINS (or left unpinned, with a comment, if unknown).
    """
    roots = tuple(roots)
    pins: dict[str, str] = {}
    missing: list[str] = []
    queue = [(root, frozenset[str]()) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in roots:
                missing.append(name)
            continue
        pins[canonicalize_name(distribution.metadata["Name"])] = distribution.version
        queue.extend(_requirements(distribution, extras))
    lines = [f"{name}=={version}" for name, version in pins.items()]
    for name in missing:
        fallback = FALLBACK_PINS.get(name)
        lines.append(f"{name}=={fallback}" if fallback else f"{name}  # not installed where this was generated: pin it")
    return sorted(lines, key=lambda line: line.split("=", 1)[0].split(" ", 1)[0])


def _requirements(distribution: metadata.Distribution, extras: frozenset[str]) -> Iterator[tuple[str, frozenset[str]]]:
    """The requirements of ``distribution`` that apply here, with ``extras`` requested."""
    for line in distribution.requires or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            yield requirement.name, frozenset(requirement.extras)


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _walk(directory: Traversable, prefix: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for entry in directory.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _walk(entry, prefix / entry.name)
        elif entry.name.endswith(_SUFFIX):
            yield prefix / entry.name, entry


def _output_part(part: str) -> str:
    part = part.removesuffix(_SUFFIX)
    if part.startswith(_DOT_PREFIX):
        part = "." + part.removeprefix(_DOT_PREFIX)
    return part


def _claim(target: Path, *, force: bool) -> bool:
    """Make ``target`` ours to write in; whether this call created it."""
    if target.is_symlink():
        raise ScaffoldError(f"{target} is a symbolic link: refusing to write through it")
    if target.exists():
        if not target.is_dir():
            raise ScaffoldError(f"{target} exists and is not a directory")
        if not force:
            raise ScaffoldError(f"{target} already exists: choose another name or directory, or use --force")
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.mkdir()
    except FileExistsError:  # created in the meantime by someone else
        raise ScaffoldError(f"{target} already exists: choose another name or directory, or use --force") from None
    return True


def _write(target: Path, file: TemplateFile) -> None:
    """Write one file under ``target``, never through a symbolic link (with --force, links may exist)."""
    path = target
    for part in file.path.parts[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise ScaffoldError(f"{path} is in the way of the template (not a plain directory)")
        path.mkdir(exist_ok=True)
    path = path / file.path.parts[-1]
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        raise ScaffoldError(f"{path} is in the way of the template (not a plain file)")
    path.write_text(file.text, encoding="utf-8")
    if file.executable:
        os.chmod(path, 0o755)  # noqa: S103 - a script the repository runs (ci.sh)
