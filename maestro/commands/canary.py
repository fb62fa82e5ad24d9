"""``maestro canary status|rollback WORKFLOW``: the workflow's canary releases."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from maestro.client import Api, api_session
from maestro.errors import Failed
from maestro.output import OUTPUT_OPTION, Output, emit_json, handles_errors, say
from maestro.render import canaries_print, styled

WORKFLOW_ARGUMENT = Annotated[str, typer.Argument(metavar="WORKFLOW", help="the workflow's name.")]

#: States in which a release still routes traffic (or holds it on stable) and can be rolled back.
ACTIVE_STATES = ("running", "paused")


def _releases(api: Api, workflow: str, *, active: bool) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"workflow_name": workflow, "page_size": 100}
    if active:
        params["state"] = list(ACTIVE_STATES)
    return list(api.get("/api/canaries", **params)["results"])


@handles_errors
def status(
    workflow: WORKFLOW_ARGUMENT,
    all_: Annotated[bool, typer.Option("--all", help="also ended releases (promoted, rolled back).")] = False,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """The workflow's active canary release (or every release with --all)."""
    with api_session() as api:
        releases = _releases(api, workflow, active=not all_)
    if output == Output.json:
        emit_json(releases)
        return
    if not releases:
        say(f"{workflow}: no {'' if all_ else 'active '}canary release")
        return
    canaries_print(releases)


@handles_errors
def rollback(
    workflow: WORKFLOW_ARGUMENT,
    reason: Annotated[str, typer.Option(help="why, recorded with the release.")] = "",
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Roll back the workflow's active canary: every unpinned run goes to the stable version again."""
    with api_session() as api:
        active = _releases(api, workflow, active=True)
        if not active:
            raise Failed(f"{workflow}: no active canary release to roll back", code="no_active_canary")
        release = api.post(f"/api/canaries/{active[0]['id']}/rollback", {"reason": reason})
    if output == Output.json:
        emit_json(release)
        return
    say(
        f"{workflow}: release {release['id']} {styled(release['state'])};"
        f" runs go to {release['stable_version']} (canary {release['canary_version']} out)"
    )
