"""Assertions on what the API answered while a dependency was down."""

from __future__ import annotations

from .cluster import Cluster, Outage

# What the fault tests poll during an outage: (method, path, every seconds).
READS = {
    "list runs": ("GET", "/api/executions", 1.0),
    "list workflows": ("GET", "/api/workflows", 1.0),
}
CREATE = {"create run": ("POST", "/api/executions", 3.0)}
READY = {"readyz": ("GET", "/readyz", 1.0)}
ALL = READS | CREATE | READY


def assert_no_500(cluster: Cluster, outage: Outage, *, allowed: dict[str, set[int]]) -> None:
    """Every answer of each endpoint is one of ``allowed[label]``: never a 500, never no answer."""
    problems = []
    for label, statuses in allowed.items():
        seen = outage.statuses(label)
        if not seen:
            problems.append(f"{label}: never polled")
        unexpected = seen - statuses
        if unexpected:
            problems.append(f"{label}: answered {sorted(map(str, unexpected))}, expected only {sorted(statuses)}")
    assert not problems, cluster.report(
        *problems, f"every status seen: {outage.summary()}", *outage.bodies[:10], f"timeline: {outage.seen[:200]}"
    )
