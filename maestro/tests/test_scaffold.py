"""maestro new: names and targets are checked, and each scaffold's ci.sh passes as generated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from maestro.scaffold import KINDS, ScaffoldError, render, scaffold_create

VENV_BIN = Path(sys.executable).parent
CI_TIMEOUT_SECONDS = 240


def ci_env() -> dict[str, str]:
    """A prepared CI image: MC's venv first on PATH, no MC or Django settings of this test run.

    MAESTRO_CONFIG stays: the CLI tests' fixture points it at a temporary file.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MC_", "DJANGO_", "PYTEST_", "MAESTRO_CI_")) and key != "PYTHONPATH"
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MAESTRO_CI_SKIP_INSTALL"] = "1"
    return env


def run_ci(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "ci.sh")],
        cwd=repo,
        env=ci_env(),
        capture_output=True,
        text=True,
        timeout=CI_TIMEOUT_SECONDS,
        check=False,
    )


def created_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


# --- names, kinds and targets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the name is empty"),
        ("../x", "no path separators or dots"),
        ("..", "no path separators or dots"),
        ("a/b", "no path separators or dots"),
        ("a\\b", "no path separators or dots"),
        ("/etc", "no path separators or dots"),
        ("nightly.report", "no path separators or dots"),
        ("Nightly", "lower-case letters, digits and dashes"),
        ("nightly report", "lower-case letters, digits and dashes"),
        ("-nightly", "starting with a letter"),
        ("nightly-", "not ending with a dash"),
        ("9lives", "starting with a letter"),
        ("ab", "at least 3 characters"),
        ("a" * 64, "64 characters, at most 63"),
    ],
)
def test_an_invalid_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str, message: str) -> None:
    for kind in KINDS:
        with pytest.raises(ScaffoldError, match=re.escape(message)):
            scaffold_create(kind, name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_longest_name_is_accepted(tmp_path: Path) -> None:
    name = "a" * 63
    repo = scaffold_create("workflow", name, tmp_path)
    assert repo == tmp_path / name
    assert f"name: {name}\n" in (repo / "workflow.yaml").read_text()


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="unknown template 'library': expected one of workflow, service"):
        scaffold_create("library", "nightly-report", tmp_path)


@pytest.mark.parametrize("name", ["policy", "json", "maestro"])
def test_a_service_may_not_shadow_an_installed_module(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match=f"its module '{name}' would shadow an installed module"):
        scaffold_create("service", name, tmp_path)
    assert scaffold_create("workflow", name, tmp_path).is_dir()  # a workflow has no module


def test_an_existing_directory_is_not_overwritten_without_force(tmp_path: Path) -> None:
    existing = tmp_path / "nightly-report"
    existing.mkdir()
    (existing / "workflow.yaml").write_text("mine")
    with pytest.raises(ScaffoldError) as caught:
        scaffold_create("workflow", "nightly-report", tmp_path)
    assert str(caught.value) == f"{existing} already exists: choose another name or directory, or use --force"
    assert (existing / "workflow.yaml").read_text() == "mine"
    assert created_files(existing) == {"workflow.yaml"}


def test_force_overwrites_the_scaffold_s_files_and_keeps_the_others(tmp_path: Path) -> None:
    repo = scaffold_create("workflow", "nightly-report", tmp_path)
    expected = (repo / "workflow.yaml").read_text()
    (repo / "workflow.yaml").write_text("broken")
    (repo / "notes.txt").write_text("kept")
    assert scaffold_create("workflow", "nightly-report", tmp_path, force=True) == repo
    assert (repo / "workflow.yaml").read_text() == expected
    assert (repo / "notes.txt").read_text() == "kept"


def test_force_does_not_write_through_a_symbolic_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repos" / "nightly-report"
    repo.mkdir(parents=True)
    (repo / "tests").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ScaffoldError, match="tests is in the way of the template"):
        scaffold_create("workflow", "nightly-report", tmp_path / "repos", force=True)
    assert list(outside.iterdir()) == []
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ScaffoldError, match="is a symbolic link"):
        scaffold_create("workflow", "link", tmp_path, force=True)


def test_a_file_in_the_way_is_refused_even_with_force(tmp_path: Path) -> None:
    (tmp_path / "nightly-report").write_text("a file")
    with pytest.raises(ScaffoldError, match="exists and is not a directory"):
        scaffold_create("workflow", "nightly-report", tmp_path, force=True)


def test_the_parent_directory_is_created(tmp_path: Path) -> None:
    repo = scaffold_create("workflow", "nightly-report", tmp_path / "a" / "b")
    assert (repo / "ci.sh").is_file()


# --- what is generated --------------------------------------------------------------

COMMON_FILES = {
    ".gitignore",
    ".secrets.baseline",
    "README.md",
    "ci.sh",
    "requirements.txt",
    "workflow.yaml",
    "policy-tests/allowed-in-eu-west-1.json",
    "policy-tests/denied-in-a-banned-region.json",
    "policy-tests/denied-once-the-day-s-budget-is-spent.json",
}


def test_a_workflow_repository_has_its_files(tmp_path: Path) -> None:
    repo = scaffold_create("workflow", "nightly-report", tmp_path)
    assert created_files(repo) == COMMON_FILES | {"tests/test_workflow.py"}


def test_a_service_repository_has_its_package_registered_under_maestro_tasks(tmp_path: Path) -> None:
    repo = scaffold_create("service", "acme-greeter", tmp_path)
    assert created_files(repo) == COMMON_FILES | {
        "pyproject.toml",
        "src/acme_greeter/__init__.py",
        "src/acme_greeter/package.py",
        "tests/test_package.py",
        "tests/test_workflow.py",
    }
    pyproject = (repo / "pyproject.toml").read_text()
    assert '[project.entry-points."maestro.tasks"]\ngreet = "acme_greeter.package:GreetPackage"' in pyproject
    assert 'namespace = "acme-greeter"' in (repo / "src/acme_greeter/package.py").read_text()
    assert "uses: pkg:acme-greeter/greet@0.1\n" in (repo / "workflow.yaml").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_every_placeholder_is_rendered_and_ci_sh_is_executable(tmp_path: Path, kind: str) -> None:
    repo = scaffold_create(kind, "nightly-report", tmp_path)
    for path in repo.rglob("*"):
        if path.is_file():
            assert not re.search(r"(?<!\$)\{\{", path.read_text()), path
    assert os.access(repo / "ci.sh", os.X_OK)
    assert json.loads((repo / ".secrets.baseline").read_text())["results"] == {}


@pytest.mark.parametrize("kind", KINDS)
def test_requirements_are_pinned_to_what_is_installed(tmp_path: Path, kind: str) -> None:
    repo = scaffold_create(kind, "nightly-report", tmp_path)
    lines = [line for line in (repo / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"[a-z0-9._-]+==[^\s=]+", line) for line in lines), lines
    for tool in ("maestro-conductor", "pytest", "regopy", "cyclonedx-bom", "detect-secrets"):
        assert f"{tool}=={metadata.version(tool)}" in lines
    assert ("setuptools" in {line.split("==")[0] for line in lines}) is (kind == "service")


def test_render_leaves_workflow_expressions_and_refuses_unknown_keys() -> None:
    assert render("name: {{ name }} ${{ inputs.name }} ${HOME}", {"name": "x"}) == "name: x ${{ inputs.name }} ${HOME}"
    with pytest.raises(KeyError, match="name"):
        render("{{ name }}", {})


# --- the generated CI, end to end ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "name"), [("workflow", "nightly-report"), ("service", "acme-greeter")])
def test_the_generated_ci_passes(tmp_path: Path, kind: str, name: str) -> None:
    repo = scaffold_create(kind, name, tmp_path)
    result = run_ci(repo)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for step in ("== tests", "== validate and plan", "== policy tests", "== SBOM", "== secrets"):
        assert step in output
    assert f"CI of {name} passed" in output
    assert "3 policy case(s), 0 failed" in output
    sbom = json.loads((repo / ".ci" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert {"maestro-conductor", "regopy"} <= {component["name"] for component in sbom["components"]}


@pytest.mark.slow
def test_a_broken_workflow_fails_the_ci(tmp_path: Path) -> None:
    repo = scaffold_create("workflow", "nightly-report", tmp_path)
    manifest = repo / "workflow.yaml"
    manifest.write_text(manifest.read_text().replace("pkg:mc/echo@1", "pkg:mc/ecoh@1"))
    result = run_ci(repo)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "unknown package 'pkg:mc/ecoh@1' (did you mean 'pkg:mc/echo@1'?)" in output
    assert "CI of nightly-report passed" not in output


@pytest.mark.slow
def test_a_broken_workflow_fails_maestro_plan_in_the_ci(tmp_path: Path) -> None:
    """Without the tests that would catch it first, ``maestro plan --local`` stops the CI."""
    repo = scaffold_create("workflow", "nightly-report", tmp_path)
    (repo / "tests" / "test_workflow.py").write_text("def test_nothing():\n    pass\n")
    manifest = repo / "workflow.yaml"
    manifest.write_text(manifest.read_text().replace("needs: [fetch]", "needs: [fetsh]"))
    result = run_ci(repo)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"workflow\.yaml:\d+:\d+: /tasks/1/needs/0: ", output), output
    assert "== policy tests" not in output


@pytest.mark.slow
def test_a_secret_fails_the_ci(tmp_path: Path) -> None:
    repo = scaffold_create("service", "acme-greeter", tmp_path)
    package = repo / "src" / "acme_greeter" / "package.py"
    key = "AKIA" + "IOSFODNN7EXAMPLQ"  # split, or this file itself would hold one
    package.write_text(package.read_text() + f'\nAWS_ACCESS_KEY_ID = "{key}"\n')
    result = run_ci(repo)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Secret Type: AWS Access Key" in output
    assert "src/acme_greeter/package.py:" in output
