"""The CLI against a live test server (and a real worker where runs must finish)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from maestro.tests.conftest import MAESTRO
from mc_project.tenancy.choices import Role
from mc_project.tenancy.services import token_create
from policy.models import PolicyDecision, TenantPolicy
from policy.services import policy_caches_clear
from tests.factories import UserFactory
from tests.workers import wait_until
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = {
    "name": "always-fails",
    "version": "1.0.0",
    "tasks": [
        {"id": "ok", "uses": "pkg:mc/echo@1", "with": {"message": "fine"}},
        {"id": "boom", "uses": "pkg:mc/fail@1", "needs": ["ok"], "with": {"message": "simulated outage"}},
    ],
}


@pytest.fixture
def user(tenant: Any) -> Any:
    return UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN, username="ci")


@pytest.fixture
def env(live_server: Any, user: Any) -> dict[str, str]:
    """MAESTRO_URL and MAESTRO_TOKEN of an admin of the ``acme`` tenant."""
    _, raw = token_create(user=user)
    return {"MAESTRO_URL": live_server.url, "MAESTRO_TOKEN": raw}


@pytest.fixture
def repo(cli: Callable[..., Result], tmp_path: Path) -> Path:
    """A directory holding the golden files; its workflow.yaml is ``my-workflow@0.1.0``."""
    assert cli("init", "--directory", tmp_path).exit_code == 0
    return tmp_path


def test_a_bad_token_exits_3(cli: Callable[..., Result], live_server: Any, repo: Path) -> None:
    env = {"MAESTRO_URL": live_server.url, "MAESTRO_TOKEN": "mc_not-a-real-token"}
    result = cli("whoami", env=env)
    assert result.exit_code == 3
    assert "(authentication_failed)" in result.stderr
    result = cli("plan", "-m", repo / "workflow.yaml", "--output", "json", env=env)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "authentication_failed"


def test_login_checks_the_token_and_writes_the_config_file_0600(
    cli: Callable[..., Result], env: dict[str, str], isolated_config: Path
) -> None:
    result = cli("login", "--url", env["MAESTRO_URL"], input=env["MAESTRO_TOKEN"] + "\n")
    assert result.exit_code == 0, result.output
    assert "as ci (admin of acme)" in result.stdout
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    result = cli("whoami", "--output", "json")  # from the file alone
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tenant"]["slug"] == "acme"

    result = cli("login", "--url", env["MAESTRO_URL"], "--token", "mc_wrong")
    assert result.exit_code == 3
    assert json.loads(isolated_config.read_text())["token"] == env["MAESTRO_TOKEN"]  # not replaced


def test_plan_publish_and_plan_again_with_policy(cli: Callable[..., Result], env: dict[str, str], repo: Path) -> None:
    manifest = repo / "workflow.yaml"
    result = cli("plan", "-m", manifest, "--output", "json", env=env)  # not published yet: the server plans it
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["source"] == "server"
    assert (plan["workflow_name"], plan["version"]) == ("my-workflow", "0.1.0")
    assert {decision["pack"] for decision in plan["policy_decisions"]} == {"budget", "pii", "quotas", "residency"}
    assert not Workflow.objects.exists() and not PolicyDecision.objects.exists()  # planning saved nothing

    result = cli("publish", "-m", manifest, env=env)
    assert result.exit_code == 0, result.output
    assert "published my-workflow@0.1.0 sha256:" in result.stdout

    result = cli("plan", "-m", manifest, env=env)  # now the very same manifest is published
    assert result.exit_code == 0, result.output
    assert "my-workflow@0.1.0  plan from server" in result.stdout
    assert "Critical path  prepare -> check -> report" in result.stdout
    assert "budget     allow (enforce)" in result.stdout
    plan = json.loads(cli("plan", "my-workflow", "--output", "json", env=env).stdout)
    assert {decision["pack"] for decision in plan["policy_decisions"]} == {"budget", "pii", "quotas", "residency"}

    result = cli("publish", "-m", manifest, "--bump", "minor", "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"]["version"] == "0.2.0"


def test_plan_of_an_unpublished_manifest_shows_the_servers_policy_decisions(
    cli: Callable[..., Result], env: dict[str, str], repo: Path, tenant: Any
) -> None:
    manifest = repo / "workflow.yaml"
    result = cli("plan", "-m", manifest, env=env)
    assert result.exit_code == 0, result.output
    assert "my-workflow@0.1.0  plan from server" in result.stdout
    assert "Critical path  prepare -> check -> report" in result.stdout
    assert "budget     allow (enforce)" in result.stdout
    assert "not evaluated" not in result.stdout

    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode="advisory", limits={"max_cost_per_run_usd": 1e-7})
    result = cli("plan", "-m", manifest, env=env)
    assert result.exit_code == 0, result.output  # advisory: explained, not blocking
    assert "budget     deny (advisory)" in result.stdout
    assert "deny run_cost_exceeded: " in result.stdout

    TenantPolicy.objects.filter(tenant=tenant, pack="budget").update(mode="enforce")
    policy_caches_clear()  # .update() sends no signal
    result = cli("plan", "-m", manifest, env=env)
    assert result.exit_code == 1
    assert "budget     deny (enforce)  blocks" in result.stdout
    assert "deny run_cost_exceeded: " in result.stdout and "at /plan/estimated_usd" in result.stdout
    assert "a run would be denied by policy (budget) (policy_denied)" in result.stderr

    result = cli("plan", "-m", manifest, "--output", "json", env=env)
    assert result.exit_code == 1
    budget = {d["pack"]: d for d in json.loads(result.stdout)["policy_decisions"]}["budget"]  # one JSON document
    assert budget["blocks"] is True and budget["deny"][0]["code"] == "run_cost_exceeded"
    assert not PolicyDecision.objects.exists()


def test_plan_with_bad_inputs_is_refused_by_the_server(
    cli: Callable[..., Result], env: dict[str, str], repo: Path
) -> None:
    result = cli("plan", "-m", repo / "workflow.yaml", "--input", "nmae=you", "--output", "json", env=env)
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "invalid_inputs"
    assert error["details"][0]["path"] == "/inputs/nmae"
    result = cli("plan", "-m", repo / "workflow.yaml", "--region", "no such region", env=env)
    assert result.exit_code == 1
    assert "/region: " in result.stderr


def test_the_server_refusing_a_manifest_exits_1_with_lines(
    cli: Callable[..., Result], env: dict[str, str], repo: Path, publish: Any
) -> None:
    publish({**FAILING, "name": "my-workflow", "version": "0.5.0"})
    result = cli("publish", "-m", repo / "workflow.yaml", "--version", "0.4.0", env=env)
    assert result.exit_code == 1
    assert "(version_not_greater)" in result.stderr


def test_a_policy_denial_exits_1_with_the_explanation(
    cli: Callable[..., Result], env: dict[str, str], tenant: Any, publish: Any
) -> None:
    publish(FAILING)
    TenantPolicy.objects.create(tenant=tenant, pack="budget", mode="enforce", limits={"max_cost_per_run_usd": 1e-7})
    result = cli("run", "always-fails", env=env)
    assert result.exit_code == 1
    assert "(policy_denied)" in result.stderr
    assert "/plan/estimated_usd: budget: " in result.stderr


def test_canary_status_and_rollback(cli: Callable[..., Result], env: dict[str, str], user: Any, publish: Any) -> None:
    from canary.services import canary_create

    stable = publish(FAILING)
    workflow = stable.workflow
    from workflows.services import draft_save, workflow_publish

    draft_save(workflow=workflow, actor=user, manifest={**FAILING, "description": "v2"})
    candidate = workflow_publish(workflow=workflow, actor=user).version
    canary_create(workflow=workflow, stable_version=stable, canary_version=candidate, actor=user, weight=20)

    result = cli("canary", "status", "always-fails", env=env)
    assert result.exit_code == 0, result.output
    assert "1.0.0" in result.stdout and "1.0.1" in result.stdout and "20%" in result.stdout
    result = cli("canary", "rollback", "always-fails", "--reason", "errors up", "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "rolled_back"
    result = cli("canary", "rollback", "always-fails", env=env)
    assert result.exit_code == 1
    assert "no active canary release" in result.stderr
    assert "no active canary release" in cli("canary", "status", "always-fails", env=env).stdout


@pytest.mark.slow
def test_run_wait_of_a_failing_workflow_exits_1(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any
) -> None:
    publish(FAILING)
    result = cli("run", "always-fails", "--wait", "--interval", "0.1", env=env)
    assert result.exit_code == 1, result.output
    assert "always-fails@1.0.0" in result.stdout
    assert " failed" in result.stdout and "simulated outage" in result.stdout
    execution = result.stdout.split("execution ", 1)[1].split()[0]

    detail = json.loads(cli("status", execution, "--output", "json", env=env).stdout)
    assert detail["status"] == "failed"
    assert {step["id"]: step["status"] for step in detail["steps"]} == {"ok": "succeeded", "boom": "failed"}
    result = cli("logs", execution, "boom", env=env)
    assert result.exit_code == 0
    assert result.stdout.startswith("--- attempt 1 on ")
    result = cli("cancel", execution, env=env)
    assert result.exit_code == 1
    assert "(execution_not_cancellable)" in result.stderr


@pytest.mark.slow
def test_run_wait_status_logs_and_disclosure(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, repo: Path, tmp_path: Path
) -> None:
    from receipts.models import Receipt

    assert cli("publish", "-m", repo / "workflow.yaml", env=env).exit_code == 0
    result = cli(
        "run", "my-workflow", "-i", "name=cli", "-i", "pause=0", "--idempotency-key", "k1", "--wait",
        "--interval", "0.1", "--output", "json", env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    execution = json.loads(result.stdout)
    assert execution["status"] == "succeeded"
    assert execution["inputs"] == {"name": "cli", "pause": 0}

    again = cli("run", "my-workflow", "-i", "name=cli", "-i", "pause=0", "--idempotency-key", "k1", env=env)
    assert execution["id"] in again.stdout  # the same execution
    result = cli("logs", execution["id"], env=env)
    assert result.exit_code == 0

    wait_until(lambda: not Receipt.objects.filter(signed_at__isnull=True).exists(), timeout=30)
    bundle = tmp_path / "out.tgz"
    result = cli("disclosure", execution["id"], "-o", bundle, "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] == bundle.stat().st_size
    with tarfile.open(bundle) as archive:
        assert any(name.endswith("SHA256SUMS") for name in archive.getnames())


@pytest.mark.slow
def test_cancel_a_running_execution(cli: Callable[..., Result], env: dict[str, str], worker: Any, repo: Path) -> None:
    assert cli("publish", "-m", repo / "workflow.yaml", env=env).exit_code == 0
    started = json.loads(cli("run", "my-workflow", "-i", "pause=60", "--output", "json", env=env).stdout)
    result = cli("cancel", started["id"], "--output", "json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] in {"cancelling", "cancelled", "compensating"}
    result = cli("run", "my-workflow", "--wait", env=env)  # not waited on: just a second run
    assert result.exit_code in {0, 1}


@pytest.mark.slow
def test_the_console_script_runs_and_follows_in_plain_lines(
    env: dict[str, str], worker: Any, repo: Path, publish: Any
) -> None:
    """The installed ``maestro`` in a subprocess, not attached to a terminal."""
    publish(FAILING)
    process_env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}, **env}
    result = subprocess.run(
        [MAESTRO, "run", "always-fails", "--wait"], env=process_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    progress = [line for line in result.stdout.splitlines() if "steps done" in line]
    assert progress, result.stdout
    assert progress[-1].split("] ", 1)[1].startswith("failed: 2/2 steps done")
    result = subprocess.run([MAESTRO, "whoami"], env={**process_env, "MAESTRO_TOKEN": "mc_bad"}, capture_output=True)
    assert result.returncode == 3


@pytest.mark.slow
def test_the_console_script_on_a_terminal_shows_live_progress(
    env: dict[str, str], worker: Any, repo: Path, publish: Any
) -> None:
    """The installed ``maestro`` attached to a pseudo-terminal: a live display, then the outcome."""
    import pty

    publish(FAILING)
    process_env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}, **env}
    process_env.update({"TERM": "xterm", "COLUMNS": "120", "LINES": "40"})
    process_env.pop("NO_COLOR", None)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [MAESTRO, "run", "always-fails", "--wait", "--interval", "0.1"],
        env=process_env,
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed its end: it exited
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert process.wait(timeout=120) == 1
    text = screen.decode(errors="replace")
    assert "\x1b[" in text, text  # rich drew on the terminal (cursor moves, styles)
    assert "steps done" in text, text  # the live line: steps done / total, current steps, elapsed
    assert "always-fails@1.0.0" in text and "simulated outage" in text, text
