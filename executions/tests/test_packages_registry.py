"""The package registry: resolution, entry points, package_problems, and the documented examples."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from executions.packages import (
    ENTRY_POINT_GROUP,
    Cost,
    PackageRegistry,
    TaskPackage,
    UnknownPackage,
    build_default_registry,
    default_registry,
    package_problems,
)
from executions.packages.base import slot_costs
from workflows.manifest import Problem, validate_manifest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def package(namespace: str = "acme", name: str = "report", version: str = "1", **attrs: Any) -> TaskPackage:
    """A TaskPackage instance of a fresh subclass with these declarations."""
    body = {"namespace": namespace, "name": name, "version": version, "cost": slot_costs(1.0), **attrs}
    return type(f"Pkg_{name}_{version}".replace(".", "_").replace("-", "_"), (TaskPackage,), body)()


# --- resolution -----------------------------------------------------------------------


def test_resolve_the_builtins_by_their_reference() -> None:
    registry = default_registry()

    for name in ("echo", "sleep", "fail", "http", "shell", "python", "storage-put"):
        found = registry.resolve(f"pkg:mc/{name}@1")
        assert (found.namespace, found.name, found.version) == ("mc", name, "1")
        assert found.uses == f"pkg:mc/{name}@1"


@pytest.mark.parametrize(
    ("uses", "declared"),
    [
        ("pkg:acme/report@1", "1.40.0"),  # highest of 1.x, numerically (1.40 > 1.10 > 1.9)
        ("pkg:acme/report@1.4", "1.4.2"),
        ("pkg:acme/report@1.4.0", "1.4.0"),
        ("pkg:acme/report@1.40", "1.40.0"),
        ("pkg:acme/report@2", "2.0.0"),  # the release before its pre-release
        ("pkg:acme/report@2.0.0-rc.1", "2.0.0-rc.1"),
        ("pkg:acme/report@3", "3"),
    ],
)
def test_a_version_selects_equal_or_dot_prefixed_versions_highest_first(uses: str, declared: str) -> None:
    versions = ["1.4.0", "1.4.2", "1.9.0", "1.10.0", "1.40.0", "2.0.0-rc.1", "2.0.0", "3"]
    registry = PackageRegistry(package(version=v) for v in versions)

    assert registry.resolve(uses).version == declared


def test_a_prefix_must_end_at_a_dot() -> None:
    registry = PackageRegistry([package(version="14.0.0"), package(version="1.10.0")])

    with pytest.raises(
        UnknownPackage, match=re.escape("unknown version '1.1' of pkg:acme/report; known versions: 1.10.0, 14.0.0")
    ):
        registry.resolve("pkg:acme/report@1.1")
    assert registry.resolve("pkg:acme/report@1").version == "1.10.0"


def test_an_unknown_package_suggests_a_close_one() -> None:
    with pytest.raises(UnknownPackage) as caught:
        default_registry().resolve("pkg:mc/ecoh@1")

    assert str(caught.value) == "unknown package 'pkg:mc/ecoh@1' (did you mean 'pkg:mc/echo@1'?)"


def test_an_unknown_version_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPackage, match="unknown version '2' of pkg:mc/echo; known versions: 1"):
        default_registry().resolve("pkg:mc/echo@2")


def test_a_malformed_reference_is_unknown() -> None:
    with pytest.raises(UnknownPackage, match="not a package reference"):
        default_registry().resolve("mc/echo")


def test_packages_are_listed_by_reference() -> None:
    registry = PackageRegistry([package(name="b"), package(name="a", version="2"), package(name="a", version="1.5")])

    assert [p.uses for p in registry.packages()] == ["pkg:acme/a@1.5", "pkg:acme/a@2", "pkg:acme/b@1"]
    assert "pkg:acme/a@1" in registry
    assert "pkg:acme/a@3" not in registry


def test_registering_clears_earlier_resolutions() -> None:
    registry = PackageRegistry([package(version="1.0.0")])
    assert registry.resolve("pkg:acme/report@1").version == "1.0.0"

    registry.register(package(version="1.1.0"))

    assert registry.resolve("pkg:acme/report@1").version == "1.1.0"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (package(version="1"), "already registered"),
        (package(namespace="Acme"), "not a valid package reference"),
        (package(version="v1"), "not a valid package reference"),
        (package(name="other", cost={"small": Cost(1, 1)}), "no cost for resource class medium, large"),
        (package(name="other", input_schema={"type": "frob"}), "invalid input schema"),
    ],
)
def test_malformed_or_clashing_packages_are_refused(bad: TaskPackage, fragment: str) -> None:
    registry = PackageRegistry([package(version="1")])

    with pytest.raises(ValueError, match=fragment):
        registry.register(bad)


def test_the_default_registry_is_built_once() -> None:
    assert default_registry() is default_registry()


# --- entry points ---------------------------------------------------------------------


class ThirdPartyPackage(TaskPackage):
    namespace = "acme"
    name = "report"
    version = "2.1.0"
    cost = slot_costs(5.0)


THIRD_PARTY_LIST = [package(name="lint"), package(name="deploy", version="0.3")]
NOT_A_PACKAGE = {"uses": "pkg:acme/nope@1"}
CLASHES_WITH_ECHO = package(namespace="mc", name="echo", version="1")
HERE = __name__


def entry_point(name: str, target: str, group: str = ENTRY_POINT_GROUP) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=target, group=group)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[importlib.metadata.EntryPoint]:
    installed: list[importlib.metadata.EntryPoint] = []

    def entry_points(**params: Any) -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in installed if ep.group == params.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return installed


def test_entry_points_add_instances_classes_and_lists(fake_entry_points: list[Any]) -> None:
    fake_entry_points += [
        entry_point("report", f"{HERE}:ThirdPartyPackage"),
        entry_point("several", f"{HERE}:THIRD_PARTY_LIST"),
        entry_point("elsewhere", f"{HERE}:ThirdPartyPackage", group="other.group"),
    ]

    registry = build_default_registry()

    assert registry.resolve("pkg:acme/report@2").version == "2.1.0"
    assert registry.resolve("pkg:acme/lint@1").name == "lint"
    assert registry.resolve("pkg:acme/deploy@0").version == "0.3"
    assert registry.resolve("pkg:mc/echo@1").name == "echo"


def test_broken_entry_points_are_logged_and_skipped(
    fake_entry_points: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    fake_entry_points += [
        entry_point("missing-module", "no_such_module_for_mc_tests:thing"),
        entry_point("missing-attr", f"{HERE}:NoSuchThing"),
        entry_point("wrong-type", f"{HERE}:NOT_A_PACKAGE"),
        entry_point("clash", f"{HERE}:CLASHES_WITH_ECHO"),
        entry_point("good", f"{HERE}:ThirdPartyPackage"),
    ]

    with caplog.at_level(logging.WARNING, logger="executions.packages.registry"):
        registry = build_default_registry()

    assert registry.resolve("pkg:acme/report@2.1").version == "2.1.0"
    assert type(registry.resolve("pkg:mc/echo@1")).__name__ == "EchoPackage"  # the built-in won
    skipped = " ".join(record.getMessage() for record in caplog.records)
    for name in ("missing-module", "missing-attr", "wrong-type", "clash"):
        assert repr(name) in skipped
    assert "pkg:mc/echo@1 is already registered" in skipped


# --- package_problems -----------------------------------------------------------------


def manifest(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "pkg-test", "version": "1.0.0", "tasks": list(tasks), **top}


def problems_of(doc: Any) -> list[tuple[str, str]]:
    return sorted((p.path, p.message) for p in package_problems(doc))


def test_unknown_packages_are_reported_at_their_uses() -> None:
    doc = manifest(
        {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": 1}},
        {
            "id": "b",
            "uses": "pkg:mc/slep@1",
            "compensate": {"uses": "pkg:acme/undo@1"},
        },
    )

    assert problems_of(doc) == [
        ("/tasks/1/compensate/uses", "unknown package 'pkg:acme/undo@1'"),
        ("/tasks/1/uses", "unknown package 'pkg:mc/slep@1' (did you mean 'pkg:mc/sleep@1'?)"),
    ]


def test_with_is_checked_against_the_input_schema_at_manifest_paths() -> None:
    doc = manifest(
        {"id": "a", "uses": "pkg:mc/sleep@1", "with": {"seconds": 5000}},
        {"id": "b", "uses": "pkg:mc/sleep@1", "with": {"secs": 1}},
        {"id": "c", "uses": "pkg:mc/echo@1"},
        {
            "id": "d",
            "uses": "pkg:mc/echo@1",
            "with": {"message": 1},
            "compensate": {"uses": "pkg:mc/shell@1", "with": {"argv": []}},
        },
    )

    assert problems_of(doc) == [
        ("/tasks/0/with/seconds", "must be at most 3600, got 5000"),
        ("/tasks/1/with", "missing required key 'seconds'"),
        ("/tasks/1/with/secs", "unknown key 'secs' (did you mean 'seconds'?)"),
        ("/tasks/2/with", "missing required key 'message'"),
        ("/tasks/3/compensate/with/argv", "must not be empty"),
    ]


def test_values_holding_expressions_are_judged_only_when_rendered() -> None:
    doc = manifest(
        {
            "id": "a",
            "uses": "pkg:mc/http@1",
            "with": {
                "url": "${{ inputs.url }}",  # pattern: unknown until run time
                "method": "${{ inputs.method }}",  # enum
                "timeout_seconds": "${{ inputs.timeout }}",  # type number
                "headers": {"x-id": "id-${{ inputs.url }}"},
            },
        },
        {"id": "b", "uses": "pkg:mc/sleep@1", "with": {"seconds": "wait ${{ inputs.timeout }}"}},
        {"id": "c", "uses": "pkg:mc/shell@1", "with": {"argv": "${{ inputs.argv }}"}},
        inputs={
            "url": {"type": "string"},
            "method": {"type": "string"},
            "timeout": {"type": "number"},
            "argv": {"type": "array"},
        },
    )

    # Text with an expression inside is still text: a number it can never be.
    assert problems_of(doc) == [("/tasks/1/with/seconds", "must be a number, got a string")]


def test_expression_problems_are_included() -> None:
    doc = manifest(
        {"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": "${{ inputs.regoin }}"}},
        inputs={"region": {"type": "string"}},
    )

    assert problems_of(doc) == [("/tasks/0/with/message", "unknown input 'regoin' (did you mean 'region'?)")]


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"tasks": "x"},
        manifest("not a task", 3, None),
        manifest({"id": "a"}, {"id": "b", "uses": 5}, {"id": "c", "uses": "not a ref"}),
        manifest({"id": "a", "uses": "pkg:mc/echo@1", "with": ["x"]}),
        manifest({"id": "a", "uses": "pkg:mc/echo@1", "with": {"message": 1}, "compensate": "x"}),
        manifest({"uses": "pkg:mc/echo@1", "with": {"message": "${{ steps.x.outputs.y }}"}, "needs": "x"}),
    ],
)
def test_unreadable_parts_are_skipped_not_crashed_on(doc: Any) -> None:
    assert all(isinstance(p, Problem) for p in package_problems(doc))


def test_package_problems_plugs_into_validate_manifest() -> None:
    doc = manifest({"id": "a", "uses": "pkg:mc/echo@1", "with": {"mesage": "hi"}})

    problems = validate_manifest(doc, extra_checks=[package_problems])

    assert [p.as_dict() for p in problems] == [
        {"path": "/tasks/0/with", "message": "missing required key 'message'"},
        {"path": "/tasks/0/with/mesage", "message": "unknown key 'mesage' (did you mean 'message'?)"},
    ]


def test_a_custom_registry_can_be_given() -> None:
    registry = PackageRegistry([package()])
    doc = manifest({"id": "a", "uses": "pkg:acme/report@1"}, {"id": "b", "uses": "pkg:mc/echo@1"})

    assert [p.path for p in package_problems(doc, registry)] == ["/tasks/1/uses"]


# --- documented examples --------------------------------------------------------------


def builtins() -> list[TaskPackage]:
    return [p for p in default_registry().packages() if p.namespace == "mc"]


@pytest.mark.parametrize("pkg", builtins(), ids=lambda p: p.uses)
def test_each_builtin_example_is_a_valid_manifest(pkg: TaskPackage) -> None:
    tasks = yaml.safe_load(pkg.example)
    doc = manifest(*tasks)

    assert any(task["uses"] == pkg.uses for task in tasks)
    assert validate_manifest(doc, extra_checks=[package_problems]) == []


@pytest.mark.parametrize("pkg", builtins(), ids=lambda p: p.uses)
def test_each_builtin_example_is_in_the_docs(pkg: TaskPackage) -> None:
    page = (DOCS / "packages.md").read_text(encoding="utf-8")

    assert f"### {pkg.uses}\n" in page
    assert f"```yaml\n{pkg.example}```" in page


def test_the_third_party_example_in_the_docs_works() -> None:
    page = (DOCS / "packages.md").read_text(encoding="utf-8")
    source = re.search(r"```python\n(# acme_tasks/report.py\n.*?)```", page, re.DOTALL)
    assert source is not None
    namespace: dict[str, Any] = {}
    exec(compile(source.group(1), "acme_tasks/report.py", "exec"), namespace)  # noqa: S102  our own docs

    registry = PackageRegistry([*builtins(), namespace["ReportPackage"]()])
    found = registry.resolve("pkg:acme/report@2")
    doc = manifest(*yaml.safe_load(found.example))

    assert validate_manifest(doc, extra_checks=[lambda d: package_problems(d, registry)]) == []
    assert found.check_input({"region": "EU"})[0].path == "/region"
