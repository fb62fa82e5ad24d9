"""How long from ``maestro new`` to a green CI of the new repository? Run: python -m bench.bench_templates

For each template kind (workflow, service), SAMPLES times, in a fresh temporary directory:

- **MC**: ``maestro new <kind> <name> --directory <tmp>`` (the console script, as a user
  runs it), then the new repository's ``./ci.sh`` until it exits green: tests,
  ``maestro plan --local``, the policy tests, the CycloneDX SBOM and the secret scan (a
  service first registers its package). The CI runs as on a prepared CI image: MC's venv
  first on PATH and ``MAESTRO_CI_SKIP_INSTALL=1``, so nothing is downloaded and the
  figure is the repository's own work, not pip's. Each step's share is read from the
  time its ``== step`` header reached the pipe.
- **baseline**: the same repository's tests alone (``python -m pytest tests``, with the
  package registered for a service), the least CI any repository runs. The ratio says
  what the rest of the paved road (validation, policy, SBOM, secrets) costs on top.

Kinds and sides take turns. Targets: ``maestro new`` -> green CI under 120 s at worst
(the sprint plan's KR) and under 60 s at p50 (our aim).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .harness import Result, environment, print_rows, print_table, summarize, write_json

KINDS = {"workflow": "bench-workflow", "service": "bench-service"}
SAMPLES = 3
TARGET_WORST_S = 120.0  # sprint plan KR
TARGET_P50_S = 60.0  # our aim
CI_TIMEOUT_S = 600
VENV_BIN = Path(sys.executable).parent
MAESTRO = VENV_BIN / "maestro"
STEP_PREFIX = "== "


@dataclass
class Sample:
    """One ``maestro new`` + ``ci.sh`` of one kind, and the baseline on the same repository."""

    new_ms: float
    ci_ms: float
    baseline_ms: float
    steps_ms: dict[str, float] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.new_ms + self.ci_ms


def ci_environment() -> dict[str, str]:
    """A prepared CI image: MC's venv first on PATH, nothing of the caller's MC or Django settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MC_", "DJANGO_", "MAESTRO_"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MAESTRO_CI_SKIP_INSTALL"] = "1"
    return env


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def run_ci(repo: Path, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Run ``ci.sh``; its duration and each step's (header to next header), in ms. Exits if it fails."""
    stamps: list[tuple[str, float]] = []
    lines: list[str] = []
    start = time.perf_counter()
    # The command is the repository's own CI script, generated a moment ago.
    with subprocess.Popen(  # noqa: S603
        [str(repo / "ci.sh")], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith(STEP_PREFIX):
                stamps.append((line[len(STEP_PREFIX) :].split(":")[0].split(" (")[0].strip(), _ms_since(start)))
        status = process.wait(timeout=CI_TIMEOUT_S)
    total = _ms_since(start)
    if status != 0:
        sys.stdout.write("".join(lines[-40:]))
        raise SystemExit(f"{repo}/ci.sh failed with exit status {status}: not green, nothing to time")
    ends = [at for _, at in stamps[1:]] + [total]
    return total, {name: end - at for (name, at), end in zip(stamps, ends, strict=True)}


def run_baseline(repo: Path, env: dict[str, str]) -> float:
    """The repository's tests alone, as its CI runs them (a service's package registered by that CI)."""
    env = dict(env)
    if (repo / "src").is_dir():
        env["PYTHONPATH"] = f"{repo / 'src'}{os.pathsep}{repo / '.ci' / 'site'}"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
        timeout=CI_TIMEOUT_S,
    )
    return _ms_since(start)


def sample(kind: str, name: str, env: dict[str, str]) -> Sample:
    """``maestro new`` then ``ci.sh`` in a fresh directory; then the baseline there."""
    with tempfile.TemporaryDirectory(prefix="mc-bench-templates-") as directory:
        start = time.perf_counter()
        subprocess.run(  # noqa: S603 - MC's own console script
            [str(MAESTRO), "new", kind, name, "--directory", directory],
            env=env,
            check=True,
            capture_output=True,
            timeout=CI_TIMEOUT_S,
        )
        new_ms = _ms_since(start)
        repo = Path(directory) / name
        ci_ms, steps_ms = run_ci(repo, env)
        return Sample(new_ms, ci_ms, run_baseline(repo, env), steps_ms)


def _rows(kind: str, samples: list[Sample]) -> list[Result]:
    rows = [
        summarize(f"{kind}: maestro new -> green CI", [s.total_ms for s in samples]),
        summarize("  maestro new", [s.new_ms for s in samples]),
        summarize("  ci.sh", [s.ci_ms for s in samples]),
    ]
    for step in samples[0].steps_ms:
        rows.append(summarize(f"    {step}", [s.steps_ms.get(step, 0.0) for s in samples]))
    rows.append(summarize(f"{kind}: baseline, pytest tests alone", [s.baseline_ms for s in samples]))
    return rows


def main() -> None:
    """Time, print, compare with the targets, and save bench/results/templates.json."""
    if not MAESTRO.exists():
        raise SystemExit(f"{MAESTRO} is missing: install the project (make install)")
    env = ci_environment()
    loadavg_start = os.getloadavg()
    samples: dict[str, list[Sample]] = {kind: [] for kind in KINDS}
    kinds = list(KINDS)
    for index in range(SAMPLES):
        shift = index % len(kinds)  # each kind goes first in turn
        for kind in kinds[shift:] + kinds[:shift]:
            samples[kind].append(sample(kind, KINDS[kind], env))

    rows = [row for kind in KINDS for row in _rows(kind, samples[kind])]
    print(f"\n{SAMPLES} samples of each kind, taking turns; CI on MC's venv (MAESTRO_CI_SKIP_INSTALL=1)\n")
    print_table(rows, p99=True)
    summary = {}
    for kind in KINDS:
        total = summarize(kind, [s.total_ms for s in samples[kind]])
        baseline = summarize(kind, [s.baseline_ms for s in samples[kind]])
        summary[kind] = {
            "total_p50_s": total.p50 / 1000,
            "total_max_s": total.max / 1000,
            "ratio_to_baseline_p50": total.p50 / baseline.p50,
            "met_kr": total.max / 1000 < TARGET_WORST_S,
            "met_aim": total.p50 / 1000 < TARGET_P50_S,
        }
    print()
    print_rows(
        (
            "kind",
            "new -> green p50 s",
            "max s",
            "/ tests alone",
            f"KR < {TARGET_WORST_S:.0f} s",
            f"aim < {TARGET_P50_S:.0f} s",
        ),
        [
            (
                kind,
                f"{figures['total_p50_s']:.1f}",
                f"{figures['total_max_s']:.1f}",
                f"{figures['ratio_to_baseline_p50']:.2f}x",
                "met" if figures["met_kr"] else "MISSED",
                "met" if figures["met_aim"] else "MISSED",
            )
            for kind, figures in summary.items()
        ],
    )
    path = write_json(
        "templates",
        {
            "samples": SAMPLES,
            "results": [row.as_dict() for row in rows],
            "summary": summary,
            "targets": {"worst_s": TARGET_WORST_S, "p50_s": TARGET_P50_S},
            "loadavg_at_start": loadavg_start,
            "loadavg_at_end": os.getloadavg(),
            "environment": environment(),
        },
    )
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
