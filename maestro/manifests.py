"""Local checks of a manifest file, with the server's own code (workflows.manifest,
executions.packages, executions.planner: plain Python, no Django), and problems mapped
back to the file's lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestro.errors import Failed, MaestroError
from maestro.positions import locate

_AT_LINE = re.compile(r" at line \d+, column \d+$")
#: Problems about a key itself (workflows.manifest.messages), shown at the key, not its value.
_KEY_PROBLEM = "unknown key"


@dataclass(frozen=True)
class LocalManifest:
    """A manifest file that passed every local check."""

    path: Path
    text: str
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.doc["name"])

    @property
    def version(self) -> str:
        return str(self.doc["version"])

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical form, the address a published snapshot has."""
        from workflows.manifest import canonical_json, sha256_digest

        return f"sha256:{sha256_digest(canonical_json(self.doc))}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Failed(f"{path}: no such file", code="file_not_found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Failed(f"{path}: cannot read it: {exc}", code="file_unreadable") from exc


def problems_located(path: Path, text: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``problems`` ({path, message}) with the ``file``, ``line`` and ``column`` of each path,
    in the order of the file.
    """
    key_paths = frozenset(p["path"] for p in problems if p["message"].startswith(_KEY_PROBLEM))
    where = locate(text, [problem["path"] for problem in problems], key_paths=key_paths)
    located = [
        {**problem, "file": str(path), "line": where[problem["path"]][0], "column": where[problem["path"]][1]}
        for problem in problems
    ]
    return sorted(located, key=lambda problem: (problem["line"], problem["column"]))


def manifest_check(path: Path) -> LocalManifest:
    """Parse and validate ``path`` exactly as the server would (schema, semantics, packages,
    expressions); raise Failed with every problem located in the file.
    """
    from executions.packages import package_problems
    from workflows.manifest import ManifestError, ManifestSyntaxError, parse_manifest, validate_manifest

    text = _read(path)
    try:
        doc = parse_manifest(text)
    except ManifestSyntaxError as exc:
        detail: dict[str, Any] = {"path": "", "message": _AT_LINE.sub("", exc.message), "file": str(path)}
        detail.update(line=exc.line or 1, column=exc.column or 1)
        raise Failed(f"{path}: not a valid manifest", code=exc.code, details=[detail]) from exc
    except ManifestError as exc:  # too large
        raise Failed(f"{path}: {exc.message}", code=exc.code) from exc
    problems = [problem.as_dict() for problem in validate_manifest(doc, extra_checks=[package_problems])]
    if problems:
        count = len(problems)
        raise Failed(
            f"{path}: {count} problem{'s' if count > 1 else ''}",
            code="manifest_invalid",
            details=problems_located(path, text, problems),
        )
    return LocalManifest(path=path, text=text, doc=doc)


def plan_local(manifest: LocalManifest) -> dict[str, Any]:
    """The dry-run plan built here, by the server's planner; no policy decisions."""
    from executions.planner import plan_build

    return plan_build(manifest.doc).as_dict()


def located_error(error: MaestroError, manifest: LocalManifest) -> MaestroError:
    """``error`` (from the server, about this manifest) with its problems located in the file."""
    if error.code in {"manifest_invalid", "validation_failed"} and error.details:
        details = [
            {**detail, "path": detail["path"].removeprefix("/manifest")}
            for detail in error.details
            if isinstance(detail.get("path"), str)
        ]
        error.details = problems_located(manifest.path, manifest.text, details)
    return error
