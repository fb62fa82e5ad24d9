"""A tiny timing harness: run a callable many times, summarise, print, save as JSON.

Plain Python on purpose (no pytest-benchmark): a bench is a script you run and
read, and its numbers land in bench/results/<name>.json (git-ignored).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Result:
    """Summary of timed samples (of a callable, or latencies read elsewhere), in milliseconds."""

    name: str
    repeat: int
    p50: float
    p95: float
    mean: float
    min: float
    p99: float = 0.0
    max: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return asdict(self)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def run(name: str, fn: Callable[[], object], *, repeat: int = 50, warmup: int = 5) -> Result:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed; summarise in ms."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / _NS_PER_MS)
    return summarize(name, samples)


def summarize(name: str, samples_ms: Sequence[float]) -> Result:
    """Summarise samples (in ms) taken elsewhere, e.g. latencies read from database rows."""
    if not samples_ms:
        raise ValueError("no samples")
    ordered = sorted(samples_ms)
    return Result(
        name=name,
        repeat=len(ordered),
        p50=_percentile(ordered, 0.50),
        p95=_percentile(ordered, 0.95),
        mean=statistics.fmean(ordered),
        min=ordered[0],
        p99=_percentile(ordered, 0.99),
        max=ordered[-1],
    )


def print_table(rows: Sequence[Result], *, p99: bool = False) -> None:
    """Print results as an aligned table, one row per result; ``p99`` adds the p99 and max columns."""
    headers: tuple[str, ...] = ("name", "repeat", "p50 ms", "p95 ms", "mean ms", "min ms")
    cells: list[tuple[str, ...]] = [
        (r.name, str(r.repeat), f"{r.p50:.2f}", f"{r.p95:.2f}", f"{r.mean:.2f}", f"{r.min:.2f}") for r in rows
    ]
    if p99:
        headers = (*headers, "p99 ms", "max ms")
        cells = [(*row, f"{r.p99:.2f}", f"{r.max:.2f}") for row, r in zip(cells, rows, strict=True)]
    print_rows(headers, cells)


def print_rows(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    """Print an aligned table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]
    for row in [tuple(headers), tuple("-" * w for w in widths), *cells]:
        first, *rest = row
        print("  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]))


def environment() -> dict[str, str]:
    """Where the numbers were taken, saved next to them."""
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to bench/results/<name>.json and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
