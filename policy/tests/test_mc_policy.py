"""`manage.py mc_policy sync|test|eval`: revisions kept, a broken bundle refused, tests and eval."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from policy.models import PolicyBundle
from policy.services import BUNDLES_DIR


def run(*args: str) -> str:
    out = StringIO()
    call_command("mc_policy", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    root = tmp_path / "bundles"
    shutil.copytree(BUNDLES_DIR, root)
    return root


@pytest.mark.django_db
def test_sync_activates_each_pack_keeps_revisions_and_refuses_a_broken_bundle(bundles: Path) -> None:
    first = run("sync", "--path", str(bundles))
    assert first.count("new revision, active") == 4
    assert "unchanged, active" in run("sync", "--path", str(bundles))
    assert PolicyBundle.objects.count() == 4
    budget = bundles / "budget"
    manifest = json.loads((budget / ".manifest").read_text())
    (budget / ".manifest").write_text(json.dumps({**manifest, "revision": "2"}))
    (budget / "policy.rego").write_text((budget / "policy.rego").read_text() + "\n# a new revision\n")
    run("sync", "--path", str(bundles))
    assert PolicyBundle.objects.filter(pack="budget").count() == 2
    assert PolicyBundle.objects.get(pack="budget", active=True).revision == "2"
    (budget / "policy.rego").write_text("package mc.budget\n\ndeny contains x if {\n")
    with pytest.raises(CommandError, match="refused: budget"):
        run("sync", "--path", str(bundles))
    assert PolicyBundle.objects.get(pack="budget", active=True).revision == "2"  # the active one stays


def test_test_runs_every_pack_and_fails_on_a_failing_rego_test(bundles: Path) -> None:
    assert "residency: 23/23 passed" in run("test", "--path", str(bundles))
    tests = bundles / "budget" / "policy_test.rego"
    tests.write_text(tests.read_text() + "\ntest_that_fails if {\n\t1 == 2\n}\n")
    with pytest.raises(CommandError, match="1 Rego test"):
        run("test", "--path", str(bundles))


def test_eval_prints_each_decision(tmp_path: Path) -> None:
    document = {
        "version": "mc.policy/v1",
        "stage": "execute",
        "request": {"tenant": "acme", "actor": "", "mode": "run", "region": "eu-west-1", "resource_classes": []},
        "manifest": {"name": "x", "region": "eu-west-1", "tasks": []},
        "plan": {"estimated_usd": 9.0, "estimated_seconds": 1, "steps": [], "side_effects": [], "data_classes": []},
        "usage": {"running_steps": {}, "spend_today_usd": 0},
        "limits": {},
    }
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))
    decisions = {d["pack"]: d for d in json.loads(run("eval", "--input", str(path)))}
    assert decisions["budget"]["result"] == "deny"
    assert decisions["budget"]["deny"][0]["code"] == "run_cost_exceeded"
    assert decisions["residency"]["result"] == "allow"
    path.write_text("[1, 2]")
    with pytest.raises(CommandError, match="JSON object"):
        run("eval", "--input", str(path))
