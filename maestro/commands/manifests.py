"""``maestro plan`` and ``maestro publish``: a manifest file, checked here first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from maestro.client import Api, api_session, path_segment
from maestro.errors import EXIT_FAILED, Failed, MaestroError
from maestro.inputs import INPUTS_OPTION, REGION_OPTION, inputs_parse
from maestro.manifests import LocalManifest, located_error, manifest_check, plan_local
from maestro.output import OUTPUT_OPTION, Output, emit_json, error_print, handles_errors, say
from maestro.render import plan_print

MANIFEST_OPTION = Annotated[
    Path | None, typer.Option("--manifest", "-m", help="the manifest file (YAML or JSON).", dir_okay=False)
]


def _server_plan(api: Api, manifest: LocalManifest, inputs: dict[str, Any], region: str | None) -> dict[str, Any]:
    """The server's plan of this manifest, published or not, with every policy pack's decision."""
    body: dict[str, Any] = {"manifest": manifest.text, "inputs": inputs} | ({"region": region} if region else {})
    try:
        return api.post("/api/manifests/plan", body) | {"source": "server"}
    except Failed as exc:
        if exc.code == "manifest_invalid":  # the server's checks are newer than these
            raise located_error(exc, manifest) from exc
        raise


def _exit_if_blocked(result: dict[str, Any], *, as_json: bool) -> None:
    """Exit 1 when an enforced pack denies (the run would be refused), after the plan is shown."""
    blocking = sorted({d["pack"] for d in result.get("policy_decisions") or [] if d.get("blocks")})
    if not blocking:
        return
    if not as_json:  # the plan above holds every explanation
        error_print(
            Failed(f"a run would be denied by policy ({', '.join(blocking)})", code="policy_denied"), as_json=False
        )
    raise typer.Exit(EXIT_FAILED)


@handles_errors
def plan(
    reference: Annotated[
        str | None, typer.Argument(metavar="[NAME[@VERSION]]", help="a published workflow (instead of -m).")
    ] = None,
    manifest: MANIFEST_OPTION = None,
    local: Annotated[bool, typer.Option("--local", help="check and plan here only: no server, no config.")] = False,
    inputs: INPUTS_OPTION = None,
    region: REGION_OPTION = None,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Check a manifest like the server does and show its plan: stages, critical path, cost, policy.

    Problems print as FILE:LINE:COL: path: message (exit 1); so does a plan an enforced
    policy pack denies (exit 1, after the plan).
    """
    if (manifest is None) == (reference is None):
        raise typer.BadParameter("give either -m FILE or NAME[@VERSION]", param_hint="-m / NAME")
    values = inputs_parse(inputs)
    if reference is not None:
        if local:
            raise typer.BadParameter("--local needs -m FILE", param_hint="--local")
        result = _plan_published(reference, values, region)
        title = f"{result['workflow_name']}@{result['version']}"
    else:
        assert manifest is not None  # one of the two, checked above
        checked = manifest_check(manifest)
        if local:
            result = plan_local(checked) | {"policy_decisions": None, "source": "local"}
        else:
            with api_session() as api:
                result = _server_plan(api, checked, values, region)
        title = f"{checked.name}@{checked.version}"
    if output == Output.json:
        emit_json(result)
    else:
        plan_print(result, title=title, source=result.get("source", "server"))
    _exit_if_blocked(result, as_json=output == Output.json)


def _plan_published(reference: str, inputs: dict[str, Any], region: str | None) -> dict[str, Any]:
    name, _, version = reference.partition("@")
    with api_session() as api:
        workflow = api.workflow_by_name(name)
        if workflow is None:
            raise Failed(f"no workflow named {name!r}", code="not_found")
        version = version or workflow.get("latest_version") or ""
        if not version:
            raise Failed(f"{name} has no published version", code="not_found")
        body: dict[str, Any] = {"inputs": inputs} | ({"region": region} if region else {})
        return api.post(f"/api/workflows/{workflow['id']}/versions/{path_segment(version)}/plan", body) | {
            "source": "server"
        }


@handles_errors
def publish(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="the manifest file.", dir_okay=False)],
    bump: Annotated[
        str | None, typer.Option(help="major, minor or patch (default patch; a first publish takes the file's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="publish exactly this version (instead of --bump).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="the workflow's description, when it is created.")] = None,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Save the manifest as its workflow's draft (creating the workflow) and publish it."""
    if bump is not None and version is not None:
        raise typer.BadParameter("give --bump or --version, not both", param_hint="--bump / --version")
    if bump is not None and bump not in {"major", "minor", "patch"}:
        raise typer.BadParameter("must be major, minor or patch", param_hint="--bump")
    checked = manifest_check(manifest)
    with api_session() as api:
        try:
            workflow_id = _draft_save(api, checked, description)
        except MaestroError as exc:
            raise located_error(exc, checked) from exc
        body = {"bump": bump} if bump else {"version": version} if version else {}
        result = api.post(f"/api/workflows/{workflow_id}/publish", body)
    if output == Output.json:
        emit_json(result)
        return
    published = result["version"]
    say(f"published [bold]{checked.name}@{published['version']}[/bold] {published.get('digest') or ''}")
    say(f"  receipt {result['receipt_id']}")


def _draft_save(api: Api, manifest: LocalManifest, description: str | None) -> str:
    """The workflow's id, its draft now holding ``manifest``."""
    workflow = api.workflow_by_name(manifest.name)
    if workflow is None:
        body = {"manifest": manifest.text} | ({"description": description} if description else {})
        return str(api.post("/api/workflows", body)["id"])
    api.json("PUT", f"/api/workflows/{workflow['id']}/draft", json={"manifest": manifest.text})
    return str(workflow["id"])
