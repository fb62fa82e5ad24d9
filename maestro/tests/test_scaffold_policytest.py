"""python -m maestro.policytest: a scaffold's policy tests, MC's packs on the repository's workflow."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from executions.planner import plan_build
from maestro.policytest import main, policy_document
from maestro.scaffold import scaffold_create
from policy.services import policy_input
from workflows.manifest import parse_manifest


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = scaffold_create("workflow", "nightly-report", tmp_path)
    monkeypatch.chdir(path)
    return path


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def write_case(repo: Path, name: str, case: dict[str, Any]) -> Path:
    path = repo / "policy-tests" / name
    path.write_text(json.dumps(case))
    return path


def test_the_input_document_is_the_one_the_server_builds(repo: Path) -> None:
    manifest = parse_manifest((repo / "workflow.yaml").read_bytes())
    manifest["tasks"][0]["regions"] = ["eu-west-1"]
    plan = plan_build(manifest).as_dict()
    limits, usage = {"max_cost_per_run_usd": 0.5}, {"spend_today_usd": 1.25}
    server = policy_input(
        stage="plan",
        tenant=SimpleNamespace(slug="ci"),  # type: ignore[arg-type]  # policy_input reads .slug only
        actor=SimpleNamespace(username="ci"),
        manifest=manifest,
        plan=plan,
        mode="run",
        region="eu-west-1",
        limits=limits,
        usage=usage,
    )
    ours = policy_document(manifest, plan, stage="plan", region="eu-west-1", limits=limits, usage=usage)
    assert ours == server


def test_the_scaffold_s_cases_pass(repo: Path) -> None:
    status, out = run()
    assert status == 0, out
    assert out.splitlines() == [
        "ok    policy-tests/allowed-in-eu-west-1.json (execute, region eu-west-1)",
        "ok    policy-tests/denied-in-a-banned-region.json (execute, region ru-central-1)",
        "ok    policy-tests/denied-once-the-day-s-budget-is-spent.json (execute, region eu-west-1)",
        "3 policy case(s), 0 failed",
    ]


def test_a_case_the_packs_disagree_with_fails_and_says_why(repo: Path) -> None:
    case = {"description": "us-east-1 is fine", "region": "us-east-1", "expect": {"deny": []}}
    path = write_case(repo, "us.json", case)
    status, out = run("-m", "workflow.yaml", str(path.relative_to(repo)))
    assert status == 1
    assert out.splitlines() == [
        "FAIL  policy-tests/us.json (execute, region us-east-1): us-east-1 is fine",
        "      deny: expected [], got ['region_mismatch']",
        "      residency deny region_mismatch at /request/region: "
        'requested region "us-east-1" differs from the workflow\'s region "eu-west-1"',
        "1 policy case(s), 1 failed",
    ]


def test_warnings_are_checked_only_when_expected(repo: Path) -> None:
    manifest = repo / "workflow.yaml"
    manifest.write_text(manifest.read_text().replace("region: eu-west-1\n", ""))  # warns region_unset
    unchecked = write_case(repo, "a.json", {"region": "eu-west-1", "expect": {"deny": []}})
    checked = write_case(repo, "b.json", {"region": "eu-west-1", "expect": {"deny": [], "warn": []}})
    assert run(str(unchecked))[0] == 0
    status, out = run(str(checked))
    assert status == 1
    assert "      warn: expected [], got ['region_unset']" in out.splitlines()


def test_publish_asks_only_the_packs_of_publishing(repo: Path) -> None:
    # Over the daily cap, but budget does not decide at publish.
    case = {"stage": "publish", "region": "eu-west-1", "usage": {"spend_today_usd": 1000}, "expect": {"deny": []}}
    status, out = run(str(write_case(repo, "publish.json", case)))
    assert status == 0, out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "policy-tests/bad.json: not JSON"),
        ("[]", "policy-tests/bad.json: a case is a JSON object"),
        ('{"expect": {"deny": []}, "regoin": "x"}', "policy-tests/bad.json: unknown key 'regoin'"),
        ('{"stage": "dispatch", "expect": {"deny": []}}', "/stage: 'dispatch' is not one of publish, plan, execute"),
        ('{"region": "x"}', 'policy-tests/bad.json: /expect: give {"deny": [codes...]}'),
        ('{"expect": {"deny": "region_banned"}}', "/expect/deny: must be a list of finding codes"),
        ('{"limits": [], "expect": {"deny": []}}', "/limits: must be an object"),
    ],
)
def test_a_malformed_case_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (repo / "policy-tests" / "bad.json").write_text(content)
    assert run()[0] == 2
    assert message in capsys.readouterr().err


def test_no_cases_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "empty").mkdir()
    assert run("empty")[0] == 2
    assert "no case files (*.json) in empty" in capsys.readouterr().err


def test_an_invalid_manifest_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = repo / "workflow.yaml"
    manifest.write_text(manifest.read_text().replace("pkg:mc/echo@1", "pkg:mc/ecoh@1"))
    assert run()[0] == 1
    err = capsys.readouterr().err
    assert "workflow.yaml: /tasks/0/uses: unknown package 'pkg:mc/ecoh@1'" in err


def test_bundles_that_cannot_be_loaded_are_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--bundles", "nowhere")[0] == 2
    assert "cannot load MC's policy bundles: " in capsys.readouterr().err
