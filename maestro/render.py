"""Text views of plans, executions and canary releases (json mode prints the API's data as is)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from maestro.output import stdout

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "failing": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "compensating": "yellow",
    "running": "cyan",
    "allow": "green",
    "warn": "yellow",
    "deny": "red",
}


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/{style}]" if style else escape(status)


def _usd(value: float) -> str:
    if value >= 1:
        return f"${value:.2f}"
    return "$" + (f"{value:.6f}".rstrip("0").rstrip(".") or "0")


def plan_print(plan: dict[str, Any], *, title: str, source: str) -> None:
    """Stages, critical path, cost, steps, and policy decisions with their explanations."""
    console = stdout()
    console.print(f"[bold]{escape(title)}[/bold]  [dim]plan from {escape(source)}[/dim]")
    console.print("[bold]Stages[/bold]")
    for number, stage in enumerate(plan["stages"], start=1):
        console.print(f"  {number}. {escape(', '.join(stage))}")
    path = " -> ".join(plan["critical_path"])
    console.print(f"[bold]Critical path[/bold]  {escape(path)}  ({plan['estimated_seconds']:.2f} s)")
    console.print(f"[bold]Estimated cost[/bold]  {_usd(plan['estimated_usd'])} per run")
    table = Table("step", "uses", "queue", "shards", "retries", "est. s", "est. $", "side effects")
    for step in plan["steps"]:
        table.add_row(
            escape(step["id"]),
            escape(step["uses"]),
            step["queue"],
            str(step["shards"]),
            str(step["retries"]),
            f"{step['estimated_seconds']:.2f}",
            _usd(step["estimated_usd"]),
            "yes" if step["side_effects"] else "",
        )
    console.print(table)
    if plan.get("data_classes"):
        console.print(f"[bold]Data classes[/bold]  {escape(', '.join(plan['data_classes']))}")
    policy_print(plan.get("policy_decisions"))


def policy_print(decisions: list[dict[str, Any]] | None) -> None:
    """One line per pack, then each deny and warn explanation under it."""
    console = stdout()
    if decisions is None:
        console.print("[bold]Policy[/bold]  not evaluated (local plan)")
        return
    console.print("[bold]Policy[/bold]")
    for decision in decisions:
        blocks = "  [red]blocks[/red]" if decision.get("blocks") else ""
        console.print(f"  {escape(decision['pack']):<10} {styled(decision['result'])} ({decision['mode']}){blocks}")
        for kind in ("deny", "warn"):
            for item in decision.get(kind) or []:
                where = f"  at {item['path']}" if item.get("path") else ""
                explanation = f"{item.get('code')}: {item.get('message')}{where}"
                console.print(f"      {kind} {escape(explanation)}")


def _seconds(step: dict[str, Any]) -> str:
    if not step.get("started_at") or not step.get("finished_at"):
        return ""
    started = datetime.fromisoformat(step["started_at"])
    finished = datetime.fromisoformat(step["finished_at"])
    return f"{(finished - started).total_seconds():.2f} s"


def _brief(value: Any, limit: int = 60) -> str:
    if value in (None, {}, ""):
        return ""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def execution_print(execution: dict[str, Any]) -> None:
    """The execution's headline, then a table of its steps."""
    console = stdout()
    console.print(
        f"[bold]{escape(execution['workflow_name'])}@{escape(execution['version'])}[/bold]"
        f"  {execution['id']}  {styled(execution['status'])}"
    )
    if execution.get("error"):
        console.print(f"  error: {escape(_brief(execution['error'], 200))}")
    table = Table("step", "status", "attempt", "duration", "outputs / error")
    for step in execution.get("steps") or []:
        label = step["id"] if step["kind"] == "step" else f"{step['id']} ({step['kind']})"
        table.add_row(
            escape(label),
            styled(step["status"]),
            f"{step['attempt']}/{step['max_attempts']}",
            _seconds(step),
            escape(_brief(step.get("error") or step.get("outputs"))),
        )
    console.print(table)


def canaries_print(releases: list[dict[str, Any]]) -> None:
    table = Table("id", "workflow", "strategy", "stable", "canary", "weight", "state", "reason")
    for release in releases:
        table.add_row(
            str(release["id"]),
            escape(release["workflow_name"]),
            release["strategy"],
            escape(release["stable_version"]),
            escape(release["canary_version"]),
            f"{release['weight']}%",
            styled(release["state"]),
            escape(release.get("reason") or ""),
        )
    stdout().print(table)
