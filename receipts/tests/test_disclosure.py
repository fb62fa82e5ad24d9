"""Disclosure bundles: what is in one, that it verifies as its README says, and that it is stable and small.

Runs are recorded as finished in-process (no worker) and their receipts signed in-process, as
in test_chain.py. The SBOM is generated once per test session (and kept on disk by
``receipts.sbom`` for later sessions).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from executions.choices import ExecutionStatus
from executions.models import Execution, StepRun
from executions.services import execution_create
from executions.tests.conftest import workflow_doc
from mc_project.tenancy.choices import Role
from policy.models import PolicyDecision
from receipts.disclosure import (
    MAX_BUNDLE_BYTES,
    OPENSSL_STEPS,
    STEP_LOG_LIMIT,
    disclosure_build,
    disclosure_receipt,
)
from receipts.models import Receipt
from receipts.services import execution_record_create, receipt_sign
from receipts.signing import load_public_keys, verify_envelope

DOCS = Path(__file__).resolve().parents[2] / "docs" / "receipts.md"


@pytest.fixture(scope="session", autouse=True)
def _sbom() -> bytes:
    """The environment SBOM, made once per session (it takes seconds), before any bundle needs it."""
    from receipts.sbom import sbom_json

    return sbom_json()


@pytest.fixture
def api(make_client: Callable[..., APIClient], tenant: Any) -> APIClient:
    return make_client(Role.VIEWER, tenant)


def _log(step: str, lines: int) -> str:
    return "".join(
        f"2025-01-01T00:00:{n % 60:02d}Z {step}: processed batch {n} of {lines}, 0 errors\n" for n in range(lines)
    )


def _finished_run(publish: Any, tenant: Any, runner_user: Any, name: str, steps: int = 2, log_lines: int = 20) -> Any:
    """A run recorded as finished without a worker, every step succeeded with a log; its receipt unsigned."""
    tasks = [
        {"id": f"s{index:03d}", "uses": "pkg:mc/echo@1", "with": {"message": str(index)}} for index in range(steps)
    ]
    version = publish(workflow_doc(name, tasks))
    execution, _ = execution_create(tenant=tenant, actor=runner_user, workflow=version.workflow)
    for step in StepRun.objects.filter(execution=execution):
        step.status, step.log = "succeeded", _log(step.step_id, log_lines)
        step.input_digest = hashlib.sha256(f"in {step.step_id}".encode()).hexdigest()
        step.output_digest = hashlib.sha256(f"out {step.step_id}".encode()).hexdigest()
        step.save(update_fields=["status", "log", "input_digest", "output_digest"])
    execution.status, execution.finished_at = ExecutionStatus.SUCCEEDED, timezone.now()
    execution.save(update_fields=["status", "finished_at"])
    execution_record_create(execution)
    return execution


def _signed_run(publish: Any, tenant: Any, runner_user: Any, name: str, **kwargs: Any) -> Any:
    execution = _finished_run(publish, tenant, runner_user, name, **kwargs)
    for receipt in Receipt.objects.filter(tenant=tenant, signed_at__isnull=True).order_by("created_at"):
        receipt_sign(receipt.pk)
    return execution


def _members(data: bytes) -> dict[str, bytes]:
    """The files of a bundle by path inside its top directory."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            files[member.name.split("/", 1)[1]] = handle.read()
    return files


def _download(api: APIClient, execution: Any) -> bytes:
    response = api.get(f"/api/executions/{execution.pk}/disclosure.tgz")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/gzip"
    assert f'filename="mc-disclosure-{execution.pk}.tgz"' in response["Content-Disposition"]
    return bytes(response.content)


@pytest.mark.django_db
def test_the_bundle_holds_the_receipt_key_snapshot_policy_proof_sbom_and_logs(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient
) -> None:
    execution = _signed_run(publish, tenant, runner_user, "disclose-me")
    receipt = Receipt.objects.get(execution=execution)
    files = _members(_download(api, execution))

    expected = {"envelope.json", "statement.json", "public-key.pem", "manifest.json", "policy/decisions.json"}
    expected |= {"sbom.cdx.json", "logs/s000.log", "logs/s001.log", "disclosure.json", "README.md", "SHA256SUMS"}
    assert expected <= set(files)
    envelope = json.loads(files["envelope.json"])
    assert envelope == receipt.envelope
    statement = verify_envelope(envelope, load_public_keys(files["public-key.pem"]))  # the bundled key verifies it
    assert json.loads(files["statement.json"]) == statement == json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["execution"] == str(execution.pk)

    snapshot = next(s for s in statement["subject"] if s["name"] == "workflow-snapshot")["digest"]["sha256"]
    assert hashlib.sha256(files["manifest.json"]).hexdigest() == snapshot
    assert files["manifest.json"] == api.get(f"/api/snapshots/sha256:{snapshot}").content  # byte for byte

    decisions = json.loads(files["policy/decisions.json"])
    assert len(decisions) == PolicyDecision.objects.filter(execution=execution).count() > 0
    signed = {(d["pack"], d["bundle_digest"]) for d in statement["predicate"]["policy_decisions"]}
    assert {(d["pack"], d["bundle_digest"]) for d in decisions} == signed
    for decision in decisions:  # the sources hash to the digest the signed statement names
        sources = {
            p.removeprefix(decision["sources"]): c for p, c in files.items() if p.startswith(decision["sources"])
        }
        assert any(path.endswith(".rego") for path in sources)
        listing = "".join(f"{hashlib.sha256(sources[p]).hexdigest()}  {p}\n" for p in sorted(sources))
        assert "sha256:" + hashlib.sha256(listing.encode()).hexdigest() == decision["bundle_digest"]

    sbom = json.loads(files["sbom.cdx.json"])
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.6")
    assert "django" in {component["name"].lower() for component in sbom["components"]}
    assert files["logs/s001.log"].decode() == StepRun.objects.get(execution=execution, step_id="s001").log

    readme = files["README.md"].decode()
    assert "sha256sum -c SHA256SUMS" in readme and OPENSSL_STEPS in readme and str(execution.pk) in readme
    assert json.loads(files["disclosure.json"])["receipt"]["digest"] == receipt.digest


@pytest.mark.django_db
def test_sha256sums_lists_every_other_file_correctly(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient
) -> None:
    files = _members(_download(api, _signed_run(publish, tenant, runner_user, "sums")))
    listed = {}
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, path = line.split("  ", 1)
        listed[path] = digest
    assert list(listed) == sorted(listed)
    assert listed == {path: hashlib.sha256(data).hexdigest() for path, data in files.items() if path != "SHA256SUMS"}


@pytest.mark.django_db
def test_the_same_execution_always_gives_the_same_bytes(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient, tmp_path: Path
) -> None:
    execution = _signed_run(publish, tenant, runner_user, "stable")
    receipt = disclosure_receipt(execution)
    built = disclosure_build(receipt)
    assert disclosure_build(receipt) == built  # built twice, without the cache
    assert _download(api, execution) == _download(api, execution) == built
    call_command("mc_disclosure", "export", str(execution.pk), "-o", str(tmp_path / "out.tgz"), stderr=io.StringIO())
    assert (tmp_path / "out.tgz").read_bytes() == built

    with tarfile.open(fileobj=io.BytesIO(built), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    finished = int(Execution.objects.get(pk=execution.pk).finished_at.timestamp())
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(finished, 0, 0, "", "", 0o644)}
    assert built[4:8] == b"\0\0\0\0" and not built[3] & 0x08  # gzip: no mtime, no file name


@pytest.mark.django_db
def test_a_100_step_run_fits_the_size_targets_and_long_logs_are_cut_and_marked(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient
) -> None:
    execution = _signed_run(publish, tenant, runner_user, "hundred", steps=100, log_lines=30)
    typical = _download(api, execution)
    assert len(typical) < 256 * 1024, len(typical)

    # Logs of 70 KiB per step, hard to compress: each is cut, and the bundle still stays under 2 MB.
    noisy = _finished_run(publish, tenant, runner_user, "noisy", steps=100)
    for step in StepRun.objects.filter(execution=noisy):
        step.log = "".join(f"{hashlib.sha256(f'{step.pk} {n}'.encode()).hexdigest()}\n" for n in range(1_100))
        step.save(update_fields=["log"])
    receipt_sign(Receipt.objects.get(execution=noisy).pk)
    worst = _download(api, noisy)
    assert len(worst) < MAX_BUNDLE_BYTES, len(worst)
    files = _members(worst)
    logs = json.loads(files["disclosure.json"])["logs"]["steps"]
    assert len(logs) == 100 and all(entry["cut"] for entry in logs)
    assert all(len(files[entry["file"]]) <= STEP_LOG_LIMIT for entry in logs)
    assert b"MC disclosure: log cut" in files["logs/s000.log"]
    assert "Logs cut to fit" in files["README.md"].decode()


@pytest.mark.django_db
def test_unknown_and_other_tenants_executions_are_404(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient, outsider: APIClient
) -> None:
    execution = _signed_run(publish, tenant, runner_user, "private")
    for client, execution_id in ((api, "00000000-0000-0000-0000-000000000000"), (outsider, execution.pk)):
        response = client.get(f"/api/executions/{execution_id}/disclosure.tgz")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "No such execution.", "details": []}}


@pytest.mark.django_db
def test_a_run_whose_receipt_is_not_signed_yet_is_409(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient
) -> None:
    execution = _finished_run(publish, tenant, runner_user, "unsigned")
    response = api.get(f"/api/executions/{execution.pk}/disclosure.tgz")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "receipt_not_signed" and "not signed yet" in error["message"]
    assert error["details"][0]["path"] == "/receipt"

    running, _ = execution_create(tenant=tenant, actor=runner_user, workflow=execution.workflow)
    response = api.get(f"/api/executions/{running.pk}/disclosure.tgz")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "execution_not_finished")


@pytest.mark.django_db
def test_the_management_command_exports_and_refuses_clearly(
    publish: Any, tenant: Any, runner_user: Any, tmp_path: Path
) -> None:
    execution = _signed_run(publish, tenant, runner_user, "exported")
    out, err = io.StringIO(), io.StringIO()
    call_command("mc_disclosure", "export", str(execution.pk), "-o", str(tmp_path / "b.tgz"), stdout=out, stderr=err)
    assert "README.md" in _members((tmp_path / "b.tgz").read_bytes())
    assert f"disclosure bundle of execution {execution.pk}" in err.getvalue()

    with pytest.raises(CommandError, match="No execution"):
        call_command("mc_disclosure", "export", "nope", "-o", str(tmp_path / "x.tgz"))
    unsigned = _finished_run(publish, tenant, runner_user, "not-yet")
    with pytest.raises(CommandError, match="receipt_not_signed"):
        call_command("mc_disclosure", "export", str(unsigned.pk), "-o", str(tmp_path / "x.tgz"))
    assert not (tmp_path / "x.tgz").exists()

    call_command("mc_disclosure", "sbom", stdout=out)
    assert out.getvalue().strip().endswith(".cdx.json")


def test_the_readme_carries_the_openssl_steps_of_the_docs() -> None:
    block = re.search(
        r"<!-- openssl-verify:begin -->\s*```sh\n(.*?)```\s*<!-- openssl-verify:end -->", DOCS.read_text(), re.S
    )
    assert block is not None
    assert block.group(1) == OPENSSL_STEPS


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("sha256sum") is None, reason="needs openssl")
@pytest.mark.django_db
def test_an_extracted_bundle_verifies_as_its_readme_says(
    publish: Any, tenant: Any, runner_user: Any, api: APIClient, tmp_path: Path
) -> None:
    data = _download(api, _signed_run(publish, tenant, runner_user, "by-hand"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    (directory,) = tmp_path.iterdir()
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    verified = subprocess.run(["sh", "-c", OPENSSL_STEPS], cwd=directory, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified.stdout + verified.stderr
