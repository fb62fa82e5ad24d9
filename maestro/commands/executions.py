"""``maestro run``, ``status``, ``logs``, ``cancel`` and ``disclosure``: executions on the server."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from maestro.client import Api, api_session, path_segment
from maestro.errors import Failed
from maestro.follow import POLL_SECONDS, Deadline, execution_follow, logs_follow
from maestro.inputs import INPUTS_OPTION, REGION_OPTION, inputs_parse
from maestro.output import OUTPUT_OPTION, Output, emit_json, handles_errors, say
from maestro.render import execution_print, styled

EXECUTION_ARGUMENT = Annotated[str, typer.Argument(metavar="EXECUTION", help="the execution's id.")]

#: Final statuses that mean the run did not do what was asked (exit 1).
UNSUCCESSFUL = {"failed", "cancelled"}


def _detail(api: Api, execution_id: str) -> dict[str, Any]:
    return api.get(f"/api/executions/{path_segment(execution_id)}")


@handles_errors
def run(
    reference: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="the workflow (default: latest).")],
    inputs: INPUTS_OPTION = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="the same key and request again returns the first execution.")
    ] = None,
    region: REGION_OPTION = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the run to its end; exit 1 unless it succeeds.")] = False,
    show_logs: Annotated[
        bool, typer.Option("--logs", help="with --wait: print the steps' log lines as they are written.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="with --wait: give up waiting after this many seconds (exit 1; the run goes on).", min=0),
    ] = None,
    interval: Annotated[float, typer.Option(hidden=True, help="seconds between polls while waiting.")] = POLL_SECONDS,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Start an execution of a published workflow."""
    name, _, version = reference.partition("@")
    body: dict[str, Any] = {"workflow": name, "inputs": inputs_parse(inputs)}
    body |= {"version": version} if version else {}
    body |= {"region": region} if region else {}
    body |= {"idempotency_key": idempotency_key} if idempotency_key else {}
    with api_session() as api:
        execution = api.post("/api/executions", body)
        as_json = output == Output.json
        if not as_json:
            title = f"{execution['workflow_name']}@{execution['version']}"
            say(f"[{execution['id'][:8]}] {title} {styled(execution['status'])}")
            say(f"  execution {execution['id']}")
        if wait:
            deadline = Deadline(timeout, execution["id"])
            if show_logs and not as_json:
                logs_follow(api, execution["id"], interval=interval, deadline=deadline)
            else:
                execution_follow(api, execution["id"], interval=interval, quiet=as_json, deadline=deadline)
            execution = _detail(api, execution["id"])
    _show_end(execution, as_json=as_json, waited=wait)


def _show_end(execution: dict[str, Any], *, as_json: bool, waited: bool) -> None:
    if as_json:
        emit_json(execution)
    elif waited:
        execution_print(execution)
    if waited and execution["status"] in UNSUCCESSFUL:
        raise typer.Exit(1)


@handles_errors
def status(execution: EXECUTION_ARGUMENT, output: OUTPUT_OPTION = Output.text) -> None:
    """Show an execution: its status and every step's."""
    with api_session() as api:
        detail = _detail(api, execution)
    if output == Output.json:
        emit_json(detail)
        return
    execution_print(detail)


@handles_errors
def logs(
    execution: EXECUTION_ARGUMENT,
    step: Annotated[str | None, typer.Argument(help="only this step's log (every attempt).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines until the execution ends.")
    ] = False,
    interval: Annotated[float, typer.Option(hidden=True, help="seconds between polls with --follow.")] = POLL_SECONDS,
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Print the logs of every step (each line prefixed by its step), or of one step."""
    path = f"/api/executions/{path_segment(execution)}"
    path += f"/steps/{path_segment(step)}/logs" if step else "/logs"
    with api_session() as api:
        if follow and output != Output.json:
            logs_follow(api, execution, step, interval=interval)
            return
        text = api.request("GET", path, headers={"Accept": "text/plain"}).text
    if output == Output.json:
        emit_json({"execution": execution, "step": step, "log": text})
        return
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


@handles_errors
def cancel(execution: EXECUTION_ARGUMENT, output: OUTPUT_OPTION = Output.text) -> None:
    """Cancel an execution: pending steps are cancelled, running ones stopped, done ones compensated."""
    with api_session() as api:
        detail = api.post(f"/api/executions/{path_segment(execution)}/cancel")
    if output == Output.json:
        emit_json(detail)
        return
    say(f"[{detail['id'][:8]}] {detail['workflow_name']}@{detail['version']} {styled(detail['status'])}")


@handles_errors
def disclosure(
    execution: EXECUTION_ARGUMENT,
    out: Annotated[Path, typer.Option("--out", "-o", help="the file to write (.tgz).", dir_okay=False)],
    output: OUTPUT_OPTION = Output.text,
) -> None:
    """Download an execution's disclosure bundle: receipt, key, manifest, policy proof, SBOM, logs."""
    partial = out.with_name(out.name + ".part")
    try:
        size, digest = _download(
            f"/api/executions/{path_segment(execution)}/disclosure.tgz", partial, progress=output != Output.json
        )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    result = {"execution": execution, "file": str(out), "bytes": size, "sha256": digest}
    if output == Output.json:
        emit_json(result)
        return
    say(f"wrote {out} ({size} bytes, sha256 {digest})")


def _download(path: str, target: Path, *, progress: bool = True) -> tuple[int, str]:
    """Write the body of GET ``path`` to ``target``; its size and sha256. Says what it waits for on stderr."""
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    if progress:
        print(
            "building the disclosure bundle on the server (receipt, key, policy proof, SBOM, logs)...",
            file=sys.stderr,
            flush=True,
        )
    shown = 0
    with api_session() as api, target.open("wb") as handle:
        for chunk in api.download(path):
            handle.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if progress and size - shown >= 256 * 1024:
                shown = size
                print(f"  received {size / 1024:.0f} KiB", file=sys.stderr, flush=True)
    if size == 0:
        raise Failed("the server sent an empty bundle", code="empty_bundle")
    if progress:
        print(f"  done: {size / 1024:.1f} KiB in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return size, digest.hexdigest()
