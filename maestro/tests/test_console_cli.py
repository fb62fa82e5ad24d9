"""The CLI's run-watching commands against a live server and a real worker: logs as they are
written (``logs --follow``, ``run --wait --logs``), ``--timeout``, skipped steps counted as
skipped, receipts fetched and verified in one step, disclosure progress, ids by prefix."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from mc_project.tenancy.choices import Role
from mc_project.tenancy.services import token_create
from tests.factories import UserFactory
from tests.workers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
SKIPPING = {
    "name": "fails-then-skips",
    "version": "1.0.0",
    "tasks": [
        {"id": "ok", "uses": "pkg:mc/echo@1", "with": {"message": "fine"}},
        {"id": "boom", "uses": "pkg:mc/fail@1", "needs": ["ok"], "with": {"message": "simulated outage"}},
        {"id": "after", "uses": "pkg:mc/echo@1", "needs": ["boom"], "with": {"message": "never"}},
    ],
}
NAPPING = {
    "name": "naps",
    "version": "1.0.0",
    "inputs": {"seconds": {"type": "number", "default": 1}},
    "tasks": [
        {"id": "first", "uses": "pkg:mc/echo@1", "with": {"message": "hi"}},
        {"id": "nap", "uses": "pkg:mc/sleep@1", "needs": ["first"], "with": {"seconds": "${{ inputs.seconds }}"}},
        {
            "id": "flaky",
            "uses": "pkg:mc/fail@1",
            "needs": ["nap"],
            "with": {"times": 1, "message": "blip"},
            "retries": 1,
        },
    ],
}


@pytest.fixture
def env(live_server: Any, tenant: Any) -> dict[str, str]:
    user = UserFactory(membership__tenant=tenant, membership__role=Role.ADMIN, username="ci")
    _, raw = token_create(user=user)
    return {"MAESTRO_URL": live_server.url, "MAESTRO_TOKEN": raw}


def _id(result: Result) -> str:
    return result.stdout.split("execution ", 1)[1].split()[0]


def test_run_wait_logs_prints_the_error_and_counts_skipped_steps(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any
) -> None:
    publish(SKIPPING)
    result = cli("run", "fails-then-skips", "--wait", "--logs", "--interval", "0.1", env=env)
    assert result.exit_code == 1, result.output
    boom = [line for line in result.stdout.splitlines() if line.startswith("boom | ")]
    assert boom[0].startswith("boom | --- attempt 1 on ")
    assert STAMPED.match(boom[-1].removeprefix("boom | ")) and boom[-1].endswith("ERROR step_failed: simulated outage")
    assert len(boom) == len(set(boom))  # each line once

    result = cli("run", "fails-then-skips", "--wait", "--interval", "0.1", env=env)
    assert "2/3 steps done (1 failed, 1 skipped)" in result.stdout, result.stdout
    execution = _id(result)
    text = cli("logs", execution[:8], "boom", env=env).stdout
    assert "ERROR step_failed: simulated outage" in text and text.startswith("--- attempt 1 on ")


def test_logs_follow_streams_a_running_execution_to_its_end(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any
) -> None:
    publish(NAPPING)
    started = json.loads(cli("run", "naps", "-i", "seconds=1.5", "--output", "json", env=env).stdout)
    result = cli("logs", started["id"][:8], "--follow", "--interval", "0.1", env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(set(lines))
    flaky = [line for line in lines if line.startswith("flaky | ")]
    assert any(line.endswith("ERROR step_failed: blip") or "ERROR step_failed: blip" in line for line in flaky)
    assert sum(1 for line in flaky if "--- attempt" in line) == 2  # the retry's log too
    one = cli("logs", started["id"], "flaky", "--follow", "--interval", "0.1", env=env)
    assert one.exit_code == 0 and one.stdout.count("--- attempt") == 2


def test_wait_gives_up_at_its_timeout(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any
) -> None:
    publish(NAPPING)
    result = cli("run", "naps", "-i", "seconds=30", "--wait", "--timeout", "1", "--interval", "0.1", env=env)
    assert result.exit_code == 1
    assert "still running after 1 s (--timeout)" in result.stderr and "(wait_timeout)" in result.stderr
    assert cli("cancel", _id(result), env=env).exit_code == 0


def test_receipt_get_and_verify_by_execution(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any, tmp_path: Path
) -> None:
    from receipts.models import Receipt

    publish(SKIPPING)
    execution = _id(cli("run", "fails-then-skips", "--wait", "--interval", "0.1", env=env))
    wait_until(lambda: Receipt.objects.filter(execution_id=execution, signed_at__isnull=False).exists(), timeout=30)

    result = cli("receipt", "verify", "--execution", execution[:8], env=env)
    assert result.exit_code == 0, result.output
    assert f"the receipt of receipt-{execution[:8]}: verified" in result.stdout

    result = cli("receipt", "get", execution[:8], "--dir", tmp_path, env=env)
    assert result.exit_code == 0, result.output
    envelope, key = tmp_path / f"receipt-{execution[:8]}.json", tmp_path / f"receipt-{execution[:8]}.pub.pem"
    assert key.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert cli("receipt", "verify", envelope, "--key", key).exit_code == 0
    tampered = json.loads(envelope.read_text())
    tampered["payload"] = tampered["payload"][:-8] + "AAAAAAA="
    envelope.write_text(json.dumps(tampered))
    assert cli("receipt", "verify", envelope, "--key", key).exit_code == 1

    bundle = tmp_path / "bundle.tgz"
    result = cli("disclosure", execution[:8], "-o", bundle, env=env)
    assert result.exit_code == 0, result.output
    assert "building the disclosure bundle" in result.stderr and "done:" in result.stderr


def test_receipt_of_an_unfinished_run_is_a_clear_error(
    cli: Callable[..., Result], env: dict[str, str], worker: Any, publish: Any
) -> None:
    publish(NAPPING)
    started = json.loads(cli("run", "naps", "-i", "seconds=30", "--output", "json", env=env).stdout)
    result = cli("receipt", "get", started["id"], env=env)
    assert result.exit_code == 1 and "(no_receipt)" in result.stderr
    cli("cancel", started["id"], env=env)
