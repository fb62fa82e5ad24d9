"""The CLI without a server: local checks, init, usage errors, offline receipts, config."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from maestro.config import Config, config_save
from maestro.tests.conftest import MAESTRO

BROKEN = """\
name: x!
version: 1.0.0
tasks:
  - id: a
    uses: pkg:mc/echo@1
    needs: [b]
    retry: 2
    with:
      message: ${{ inputs.nme }}
"""

CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard: nothing listens there


@pytest.fixture
def golden(cli: Callable[..., Result], tmp_path: Path) -> Path:
    result = cli("init", "--directory", tmp_path)
    assert result.exit_code == 0, result.output
    return tmp_path


def test_init_writes_the_golden_files_and_its_workflow_checks_locally(cli: Callable[..., Result], golden: Path) -> None:
    for name in ("workflow.yaml", "policy-input.json", ".github/workflows/maestro.yml", "README.md"):
        assert (golden / name).is_file(), name
    assert "maestro plan --local -m workflow.yaml" in (golden / ".github/workflows/maestro.yml").read_text()
    assert json.loads((golden / "policy-input.json").read_text())["version"] == "mc.policy/v1"

    result = cli("plan", "--local", "-m", golden / "workflow.yaml")
    assert result.exit_code == 0, result.output
    assert "Critical path  prepare -> check -> report" in result.stdout


def test_init_refuses_to_overwrite_without_force(cli: Callable[..., Result], golden: Path) -> None:
    (golden / "workflow.yaml").write_text("mine")
    result = cli("init", "--directory", golden)
    assert result.exit_code == 1
    assert "use --force" in result.stderr
    assert (golden / "workflow.yaml").read_text() == "mine"

    result = cli("init", "--directory", golden, "--force")
    assert result.exit_code == 0, result.output
    assert (golden / "workflow.yaml").read_text().startswith("# A working example")
    assert (golden / "README.md").read_text().count("<!-- maestro:begin -->") == 1


def test_init_adds_its_section_to_an_existing_readme(cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# My service\n")
    assert cli("init", "--directory", tmp_path).exit_code == 0
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# My service\n\n<!-- maestro:begin -->\n## Workflow (Maestro Conductor)")


def test_problems_print_as_file_line_column_path_message(cli: Callable[..., Result], tmp_path: Path) -> None:
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text(BROKEN)
    result = cli("plan", "--local", "-m", manifest)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {manifest}: 4 problems (manifest_invalid)"
    assert lines[1:] == [
        f"{manifest}:1:7: /name: 'x!' is not a valid workflow name: expected 3 to 64 letters, digits, '-' or '_'",
        f"{manifest}:6:13: /tasks/0/needs/0: needs unknown task 'b'",
        f"{manifest}:7:5: /tasks/0/retry: unknown key 'retry' (did you mean 'retries'?)",
        f"{manifest}:9:16: /tasks/0/with/message: unknown input 'nme'",
    ]


def test_a_yaml_syntax_error_has_its_line_and_column(cli: Callable[..., Result], tmp_path: Path) -> None:
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text("name: x\ntasks:\n  - id: a\n   uses: b\n")
    result = cli("plan", "--local", "-m", manifest)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1].startswith(f"{manifest}:4:")


def test_json_output_is_one_parseable_document(cli: Callable[..., Result], golden: Path, tmp_path: Path) -> None:
    result = cli("plan", "--local", "-m", golden / "workflow.yaml", "--output", "json")
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert plan["stages"] == [["prepare"], ["build", "check"], ["report"]]
    assert plan["policy_decisions"] is None

    (tmp_path / "bad.yaml").write_text(BROKEN)
    result = cli("plan", "--local", "-m", tmp_path / "bad.yaml", "--output", "json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "manifest_invalid"
    assert {"path": "/tasks/0/needs/0", "line": 6, "column": 13}.items() <= error["details"][1].items()


@pytest.mark.parametrize(
    "args",
    [
        ("plan",),  # neither -m nor a workflow
        ("plan", "--bogus"),
        ("plan", "-m", "workflow.yaml", "hello"),  # both
        ("run",),
        ("run", "hello", "--input", "no-equals-sign"),
        ("publish", "-m", "w.yaml", "--bump", "huge"),
        ("new", "library", "x"),
        ("receipt", "verify"),
    ],
)
def test_usage_errors_exit_2(cli: Callable[..., Result], args: tuple[str, ...]) -> None:
    assert cli(*args).exit_code == 2


def test_every_command_has_help(cli: Callable[..., Result]) -> None:
    commands = [
        ["init"], ["login"], ["whoami"], ["plan"], ["publish"], ["run"], ["status"], ["logs"], ["cancel"],
        ["disclosure"], ["new"], ["receipt", "verify"], ["canary", "status"], ["canary", "rollback"],
    ]  # fmt: skip
    for command in commands:
        result = cli(*command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Usage: maestro" in result.stdout


def test_no_configuration_or_a_server_that_is_down_exits_3(cli: Callable[..., Result], golden: Path) -> None:
    result = cli("status", "0b0e7a8a-1111-4c4c-9999-000000000000")
    assert result.exit_code == 3
    assert "set MAESTRO_URL and MAESTRO_TOKEN, or run `maestro login`" in result.stderr

    env = {"MAESTRO_URL": CLOSED_PORT_URL, "MAESTRO_TOKEN": "mc_whatever"}
    result = cli("plan", "-m", golden / "workflow.yaml", env=env)
    assert result.exit_code == 3
    assert f"cannot reach {CLOSED_PORT_URL}" in result.stderr
    result = cli("run", "my-workflow", "--wait", "--output", "json", env=env)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["code"] == "unreachable"


def test_config_file_is_written_0600_and_env_wins_over_it(
    cli: Callable[..., Result], isolated_config: Path, golden: Path
) -> None:
    result = cli("login", "--url", CLOSED_PORT_URL + "/", "--no-verify", input="mc_secret\n")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    assert json.loads(isolated_config.read_text()) == {"url": CLOSED_PORT_URL, "token": "mc_secret"}
    assert "mc_secret" not in result.output  # the prompt hides it

    # An existing file readable by others is narrowed to 0600 when rewritten.
    isolated_config.chmod(0o644)
    config_save(Config(url=CLOSED_PORT_URL, token="mc_other"))
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600

    result = cli("whoami")
    assert result.exit_code == 3  # the file's server is down
    assert f"cannot reach {CLOSED_PORT_URL}" in result.stderr
    result = cli("whoami", env={"MAESTRO_URL": "http://127.0.0.1:7"})
    assert "cannot reach http://127.0.0.1:7" in result.stderr


def test_new_hands_over_to_the_scaffold(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("new", "--help")
    assert result.exit_code == 0
    assert "workflow" in result.stdout

    result = cli("new", "workflow", "nightly-report", "--directory", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "nightly-report").is_dir()
    result = cli("new", "workflow", "nightly-report", "--directory", tmp_path)  # exists: no --force
    assert result.exit_code == 2
    result = cli("new", "service", "Not A Name!", "--directory", tmp_path)
    assert result.exit_code == 2


def _signed_receipt(tmp_path: Path) -> tuple[Path, Path]:
    from receipts.signing import KeySigner, build_statement, generate_private_key, public_key_pem, sign_statement
    from receipts.signing import subject as make_subject

    key = generate_private_key()
    statement = build_statement(
        subjects=[make_subject("workflow.json", "ab" * 32)],
        predicate_type="https://maestro.example/receipt/v1",
        predicate={"kind": "test"},
    )
    signed = sign_statement(statement, KeySigner(key))
    envelope, pem = tmp_path / "receipt.json", tmp_path / "pub.pem"
    envelope.write_text(json.dumps(signed.envelope))
    pem.write_bytes(public_key_pem(key.public_key()))
    return envelope, pem


def test_receipt_verify_offline(cli: Callable[..., Result], tmp_path: Path) -> None:
    envelope, pem = _signed_receipt(tmp_path)
    result = cli("receipt", "verify", envelope, "--key", pem)
    assert result.exit_code == 0, result.output
    assert "verified, signed by key" in result.stdout
    assert "subject: workflow.json sha256:" + "ab" * 32 in result.stdout
    result = cli("receipt", "verify", envelope, "--key", pem, "--output", "json")
    assert json.loads(result.stdout)["statement"]["predicate"] == {"kind": "test"}

    document = json.loads(envelope.read_text())
    document["payload"] = document["payload"][:-4] + "AAAA"
    envelope.write_text(json.dumps(document))
    result = cli("receipt", "verify", envelope, "--key", pem)
    assert result.exit_code == 1
    assert "does NOT verify" in result.stderr


def test_the_console_script_plans_locally_without_django_and_fast(golden: Path) -> None:
    """What generated repositories' CI runs: no server, no configuration, no database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "DJANGO_", "MC_"))}
    started = time.perf_counter()
    result = subprocess.run(
        [MAESTRO, "plan", "--local", "-m", "workflow.yaml"], cwd=golden, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "my-workflow@0.1.0  plan from local" in result.stdout
    assert elapsed < 5, elapsed  # about 0.4 s; generous for loaded CI machines
