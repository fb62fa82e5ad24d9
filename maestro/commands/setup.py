"""``maestro login``, ``whoami``, ``init`` and ``new``: getting started."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from maestro.client import api_session
from maestro.config import Config, config_save
from maestro.golden import golden_write
from maestro.output import OUTPUT_OPTION, Output, emit_json, handles_errors, say


@handles_errors
def login(
    url: Annotated[str, typer.Option(prompt="MC server URL", help="e.g. https://mc.example.com")],
    token: Annotated[str, typer.Option(prompt="API token", hide_input=True, help="an API token (mc_...).")],
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="check the token with the server first.")] = True,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Save the server URL and token in the config file (mode 0600), after checking them."""
    config = Config(url=url.rstrip("/"), token=token.strip())
    me: dict[str, Any] | None = None
    if verify:
        with api_session(config) as api:
            me = api.get("/api/me")
    path = config_save(config)
    if output == Output.json:
        emit_json({"config": str(path), "url": config.url, "me": me})
        return
    who = f" as {me['username']} ({me['role']} of {me['tenant']['slug']})" if me else ""
    say(f"logged in to {config.url}{who}; saved {path}")


@handles_errors
def whoami(output: OUTPUT_OPTION = Output.text) -> None:
    """Who the configured token belongs to: user, tenant and role."""
    with api_session() as api:
        me = api.get("/api/me")
        url = api.config.url
    if output == Output.json:
        emit_json(me | {"url": url})
        return
    say(f"{me['username']} ({me['role']} of {me['tenant']['slug']}) at {url}")


@handles_errors
def init(
    directory: Annotated[
        Path, typer.Option("--directory", "-C", help="where to write them.", file_okay=False)
    ] = Path(),
    force: Annotated[bool, typer.Option("--force", help="replace files (and the README section) that exist.")] = False,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Write the golden files: workflow.yaml, policy-input.json, a CI workflow and a README section."""
    written = golden_write(directory, force=force)
    if output == Output.json:
        emit_json([{"path": str(item.path), "action": item.action} for item in written])
        return
    for item in written:
        say(f"{item.action:>16}  {item.path}")
    say("next: maestro plan --local -m workflow.yaml")


class TemplateKind(enum.StrEnum):
    workflow = "workflow"
    service = "service"


def new(
    kind: Annotated[TemplateKind, typer.Argument(help="workflow or service.")],
    name: Annotated[str, typer.Argument(help="the new repository's name (also its directory's).")],
    directory: Annotated[Path, typer.Option("--directory", "-C", help="where to create it.", file_okay=False)] = Path(),
    force: Annotated[bool, typer.Option("--force", help="write into an existing directory.")] = False,
) -> None:
    """Create a repository from a template: a workflow repo, or a service with its workflow."""
    from maestro.scaffold import ScaffoldError, scaffold_create

    try:
        created = scaffold_create(kind.value, name, directory, force=force)
    except ScaffoldError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME / --directory") from exc
    say(f"created {created}")
