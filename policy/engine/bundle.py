"""Policy bundles in OPA's layout, loaded from a directory or a ``.tar.gz``.

A bundle holds a ``.manifest`` (JSON with ``revision`` and ``roots``), Rego modules
(``*_test.rego`` files are kept for the digest but never evaluated) and ``data.json``
files, each merged into ``data`` at its directory path, as OPA does.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import rego
from .errors import BundleError

MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_BUNDLE_FILES = 1000

_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*(?:#.*)?$")


@dataclass(frozen=True)
class BundleMeta:
    """What a Decision records about the bundle it came from."""

    name: str
    revision: str
    digest: str


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle: its pack is evaluated as package ``mc.<name>``."""

    name: str
    revision: str
    roots: tuple[str, ...]
    modules: dict[str, str] = field(repr=False)
    data: dict[str, Any] = field(repr=False)
    digest: str

    @property
    def package(self) -> str:
        return f"mc.{self.name}"

    @property
    def meta(self) -> BundleMeta:
        return BundleMeta(self.name, self.revision, self.digest)


def load_bundle(path: str | Path, *, name: str | None = None) -> Bundle:
    """Load and check the bundle at ``path`` (a directory or a ``.tar.gz`` file).

    ``name`` defaults to the directory name or the archive name without ``.tar.gz``.
    Raises BundleError for a missing or invalid manifest, a Rego syntax error, a bad
    data.json, an unsafe archive member or an oversize bundle.
    """
    path = Path(path)
    if path.is_dir():
        files = _read_dir(path)
        default_name = path.name
    elif path.is_file():
        files = _read_tar(path)
        default_name = re.sub(r"\.(tar\.gz|tgz)$", "", path.name)
    else:
        raise BundleError("no such bundle", str(path))
    return bundle_from_files(files, name=name or default_name)


def bundle_from_files(files: dict[str, bytes], *, name: str) -> Bundle:
    """Build a Bundle from ``{relative posix path: content}`` (the loaders' common half)."""
    revision, roots = _parse_manifest(files)
    modules: dict[str, str] = {}
    for path in sorted(files):
        if path.endswith(".rego") and not path.endswith("_test.rego"):
            modules[path] = _decode(path, files[path])
    data: dict[str, Any] = {}
    for path in sorted(files, key=lambda p: (p.count("/"), p)):
        if PurePosixPath(path).name == "data.json":
            _merge_data(data, path, files[path], roots)
    for path, source in modules.items():
        package = _module_package(path, source)
        _check_under_roots(package.replace(".", "/"), roots, path)
        rego.check_module(path, source)
    if not any(_module_package(p, s) == f"mc.{name}" for p, s in modules.items()):
        raise BundleError(f"no module declares package mc.{name}", "")
    rego.check_build(modules, data, f"mc/{name}")
    return Bundle(name, revision, tuple(roots), modules, data, _digest(files))


def _read_dir(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for file in sorted(root.rglob("*")):
        if file.is_symlink():
            raise BundleError("symbolic links are not allowed in a bundle", str(file.relative_to(root)))
        if not file.is_file() or not _is_bundle_file(file.name):
            continue
        total += file.stat().st_size
        _check_size(total, len(files) + 1)
        files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


def _read_tar(archive: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                rel = _safe_member_name(member)
                if member.isdir() or not _is_bundle_file(PurePosixPath(rel).name):
                    continue
                total += member.size
                _check_size(total, len(files) + 1)
                handle = tar.extractfile(member)
                if handle is None:
                    raise BundleError("unreadable archive member", rel)
                content = handle.read(member.size + 1)
                if len(content) != member.size:
                    raise BundleError("archive member size does not match its header", rel)
                if rel in files:
                    raise BundleError("duplicate archive member", rel)
                files[rel] = content
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"not a readable .tar.gz bundle: {exc}", archive.name) from exc
    return files


def _safe_member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    if member.issym() or member.islnk():
        raise BundleError("links are not allowed in a bundle archive", name)
    if not (member.isfile() or member.isdir()):
        raise BundleError("only regular files and directories are allowed in a bundle archive", name)
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise BundleError("absolute paths are not allowed in a bundle archive", name)
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise BundleError("'..' is not allowed in a bundle archive path", name)
    return "/".join(parts)


def _is_bundle_file(filename: str) -> bool:
    return filename in (".manifest", "data.json") or filename.endswith(".rego")


def _check_size(total: int, count: int) -> None:
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    if count > MAX_BUNDLE_FILES:
        raise BundleError(f"bundle has more than {MAX_BUNDLE_FILES} files")


def _decode(path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"not valid UTF-8 (byte {exc.start})", path) from exc


def _parse_manifest(files: dict[str, bytes]) -> tuple[str, list[str]]:
    if ".manifest" not in files:
        raise BundleError("the bundle has no .manifest", ".manifest")
    try:
        manifest = json.loads(_decode(".manifest", files[".manifest"]))
    except json.JSONDecodeError as exc:
        raise BundleError(f"invalid JSON: {exc.msg}", ".manifest", exc.lineno, exc.colno) from exc
    if not isinstance(manifest, dict):
        raise BundleError("the manifest must be a JSON object", ".manifest")
    revision = manifest.get("revision", "")
    if not isinstance(revision, str):
        raise BundleError("revision must be a string", ".manifest")
    roots = manifest.get("roots", [""])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise BundleError("roots must be a list of strings", ".manifest")
    return revision, [r.strip("/") for r in roots]


def _merge_data(data: dict[str, Any], path: str, content: bytes, roots: list[str]) -> None:
    try:
        value = json.loads(_decode(path, content))
    except json.JSONDecodeError as exc:
        raise BundleError(f"invalid JSON: {exc.msg}", path, exc.lineno, exc.colno) from exc
    prefix = list(PurePosixPath(path).parent.parts)
    if not prefix and not isinstance(value, dict):
        raise BundleError("a data.json at the bundle root must hold a JSON object", path)
    _check_data_roots(prefix, value, roots, path)
    node = data
    for key in prefix[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise BundleError(f"data at /{key} is not an object", path)
    if prefix:
        if prefix[-1] not in node:
            node[prefix[-1]] = value
            return
        target = node[prefix[-1]]
        if not (isinstance(target, dict) and isinstance(value, dict)):
            raise BundleError(f"data conflicts at /{'/'.join(prefix)}", path)
        _deep_merge(target, value, prefix, path)
    else:
        _deep_merge(data, value, [], path)


def _deep_merge(into: dict[str, Any], value: dict[str, Any], at: list[str], file: str) -> None:
    for key, item in value.items():
        if key not in into:
            into[key] = item
        elif isinstance(into[key], dict) and isinstance(item, dict):
            _deep_merge(into[key], item, [*at, key], file)
        else:
            raise BundleError(f"data conflicts at /{'/'.join([*at, key])}", file)


def _check_data_roots(prefix: list[str], value: Any, roots: list[str], file: str) -> None:
    path = "/".join(prefix)
    if _under_roots(path, roots):
        return
    if isinstance(value, dict) and any(r.startswith(path + "/") or not path for r in roots):
        for key, item in value.items():
            _check_data_roots([*prefix, key], item, roots, file)
        return
    raise BundleError(f"data at /{path} is outside the manifest roots {roots}", file)


def _under_roots(path: str, roots: list[str]) -> bool:
    return any(not r or path == r or path.startswith(r + "/") for r in roots)


def _check_under_roots(path: str, roots: list[str], file: str) -> None:
    if not _under_roots(path, roots):
        raise BundleError(f"package {path.replace('/', '.')} is outside the manifest roots {roots}", file)


def _module_package(path: str, source: str) -> str:
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PACKAGE_RE.match(stripped)
        if match is None:
            raise BundleError("a module must start with a package declaration", path, number, 1)
        return match.group(1)
    raise BundleError("a module must start with a package declaration", path, 1, 1)


def _digest(files: dict[str, bytes]) -> str:
    """SHA-256 over a sha256sum-style listing (``<hex>  <path>\\n``, sorted by path)."""
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return "sha256:" + hashlib.sha256(listing.encode("utf-8")).hexdigest()
