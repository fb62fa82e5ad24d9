"""``maestro init``: the golden files of a repository that holds a workflow."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from maestro.errors import Failed

#: Marks the README section ``maestro init`` owns, so it is found (and replaced with --force).
README_BEGIN = "<!-- maestro:begin -->"
README_END = "<!-- maestro:end -->"

#: Packaged file -> where it goes in the repository.
GOLDEN_FILES = {
    "workflow.yaml": "workflow.yaml",
    "policy-input.json": "policy-input.json",
    "maestro.yml": ".github/workflows/maestro.yml",
}


@dataclass(frozen=True)
class Written:
    path: Path
    action: str  # "created", "overwritten", "section added", "section replaced"


def _golden(name: str) -> str:
    return resources.files("maestro").joinpath("golden", name).read_text(encoding="utf-8")


def _readme_section() -> str:
    return f"{README_BEGIN}\n{_golden('README-section.md').rstrip()}\n{README_END}\n"


def _conflicts(directory: Path) -> list[str]:
    found = [target for target in GOLDEN_FILES.values() if (directory / target).exists()]
    readme = directory / "README.md"
    if readme.exists() and README_BEGIN in readme.read_text(encoding="utf-8"):
        found.append("README.md (its maestro section)")
    return found


def golden_write(directory: Path, *, force: bool = False) -> list[Written]:
    """Write the golden files into ``directory``; refuse (writing nothing) if one exists, unless ``force``.

    The README gets a section between markers: appended to an existing README, replaced
    in place with ``force``.
    """
    conflicts = _conflicts(directory)
    if conflicts and not force:
        raise Failed(
            f"would overwrite {', '.join(conflicts)} in {directory}; use --force to replace them",
            code="files_exist",
        )
    written = []
    for name, target in GOLDEN_FILES.items():
        path = directory / target
        action = "overwritten" if path.exists() else "created"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_golden(name), encoding="utf-8")
        written.append(Written(path, action))
    written.append(_readme_write(directory / "README.md"))
    return written


def _readme_write(path: Path) -> Written:
    section = _readme_section()
    if not path.exists():
        path.write_text(section, encoding="utf-8")
        return Written(path, "created")
    text = path.read_text(encoding="utf-8")
    if README_BEGIN in text and README_END in text:
        before, _, rest = text.partition(README_BEGIN)
        _, _, after = rest.partition(README_END)
        path.write_text(before + section.rstrip("\n") + after, encoding="utf-8")
        return Written(path, "section replaced")
    separator = "" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    path.write_text(text + separator + section, encoding="utf-8")
    return Written(path, "section added")
