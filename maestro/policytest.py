"""Policy tests of a workflow repository: MC's Rego packs on the repository's own workflow.

Run: ``python -m maestro.policytest -m workflow.yaml policy-tests`` (the CI of a scaffolded
repository does). Each case is a JSON file saying how a run is asked for and what the
packs must answer::

    {
      "description": "runs in the workflow's region within the default limits",
      "stage": "execute",                 # publish | plan | execute (default execute)
      "region": "eu-west-1",              # the requested region ("" for none)
      "limits": {"max_cost_per_run_usd": 0.5},   # the tenant's limits (default {})
      "usage": {"spend_today_usd": 10},   # the tenant's usage (default {})
      "expect": {"deny": [], "warn": []}  # finding codes; "warn" may be left out
    }

The manifest is validated and planned with the registry MC's workers use (built-ins
plus ``maestro.tasks`` entry points); the ``mc.policy/v1`` input document is built as
the server builds it at that stage (docs/policy.md), and the packs of that stage
(publish: residency and pii; plan and execute: all four) are evaluated in-process with
regopy, from MC's bundles or ``--bundles DIR``. A case passes when the codes of the
findings equal the expected ones (in any order, repeats counted). Exit status: 0 all
passed, 1 a case failed or the manifest is invalid, 2 bad usage, a case file that
cannot be read, or bundles that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import policy.engine as policy_engine
from executions.packages import package_problems
from executions.planner import plan_build
from policy.document import input_document
from policy.engine import BundleError, Decision, RegoEngine, load_bundle
from workflows.manifest import ManifestError, parse_manifest, validate_manifest

PACKS = ("residency", "pii", "budget", "quotas")
#: The packs the server asks at each stage a case may describe (docs/policy.md).
STAGE_PACKS = {"publish": ("residency", "pii"), "plan": PACKS, "execute": PACKS}
TENANT = "ci"
#: Per pack; generous, since the first evaluation of a pack also compiles it.
TIMEOUT_SECONDS = 30.0

_CASE_KEYS = {"description", "stage", "region", "limits", "usage", "expect"}


class CaseError(Exception):
    """A case file that cannot be used: unreadable, not JSON, or not shaped like a case."""


@dataclass(frozen=True)
class PolicyCase:
    """One policy test: how a run is asked for, and the finding codes the packs must give."""

    path: Path
    description: str
    stage: str
    region: str
    limits: dict[str, Any]
    usage: dict[str, Any]
    expect_deny: tuple[str, ...]
    expect_warn: tuple[str, ...] | None  # None: warnings are not checked


@dataclass(frozen=True)
class CaseResult:
    """What the packs said about one case, and whether that is what it expects."""

    case: PolicyCase
    decisions: list[Decision]

    @property
    def deny(self) -> list[str]:
        return sorted(item["code"] for decision in self.decisions for item in decision.deny)

    @property
    def warn(self) -> list[str]:
        return sorted(item["code"] for decision in self.decisions for item in decision.warn)

    @property
    def passed(self) -> bool:
        if self.deny != sorted(self.case.expect_deny):
            return False
        return self.case.expect_warn is None or self.warn == sorted(self.case.expect_warn)


def policy_document(
    manifest: dict[str, Any],
    plan: dict[str, Any],
    *,
    stage: str,
    region: str,
    limits: dict[str, Any],
    usage: dict[str, Any],
    tenant: str = TENANT,
    actor: str = TENANT,
) -> dict[str, Any]:
    """The ``mc.policy/v1`` input document of a run asked in ``region``: the server's own
    (``policy.document``, which ``policy.services.policy_input`` calls), with no Django."""
    return input_document(
        stage=stage,
        tenant=tenant,
        actor=actor,
        manifest=manifest,
        plan=plan,
        mode="run",
        region=region,
        limits=limits,
        usage=usage,
    )


def case_load(path: Path) -> PolicyCase:
    """The case in ``path``; CaseError saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"{path}: cannot read it: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CaseError(f"{path}: a case is a JSON object")
    unknown = sorted(set(data) - _CASE_KEYS)
    if unknown:
        raise CaseError(f"{path}: unknown key {unknown[0]!r}; a case has {', '.join(sorted(_CASE_KEYS))}")
    stage = data.get("stage", "execute")
    if stage not in STAGE_PACKS:
        raise CaseError(f"{path}: /stage: {stage!r} is not one of {', '.join(STAGE_PACKS)}")
    expect = data.get("expect")
    if not isinstance(expect, dict) or "deny" not in expect or set(expect) - {"deny", "warn"}:
        raise CaseError(f'{path}: /expect: give {{"deny": [codes...]}}, optionally with "warn": [codes...]')
    for key in ("region", "description"):
        if not isinstance(data.get(key, ""), str):
            raise CaseError(f"{path}: /{key}: must be a string")
    for key in ("limits", "usage"):
        if not isinstance(data.get(key, {}), dict):
            raise CaseError(f"{path}: /{key}: must be an object")
    return PolicyCase(
        path=path,
        description=data.get("description", ""),
        stage=stage,
        region=data.get("region", ""),
        limits=data.get("limits", {}),
        usage=data.get("usage", {}),
        expect_deny=_codes(path, "deny", expect["deny"]),
        expect_warn=_codes(path, "warn", expect["warn"]) if "warn" in expect else None,
    )


def _codes(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
        raise CaseError(f"{path}: /expect/{key}: must be a list of finding codes (strings)")
    return tuple(value)


def case_files(paths: Sequence[Path]) -> list[Path]:
    """The case files named: files as given, directories' ``*.json`` in name order."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return found


def manifest_plan(manifest_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and its plan; CaseError listing every problem if it is not valid."""
    try:
        manifest = parse_manifest(manifest_path.read_bytes())
    except OSError as exc:
        raise CaseError(f"{manifest_path}: cannot read it: {exc.strerror}") from exc
    except ManifestError as exc:
        raise CaseError(f"{manifest_path}: {exc}") from exc
    problems = validate_manifest(manifest, extra_checks=[package_problems])
    if problems:
        lines = "\n".join(f"{manifest_path}: {problem.path or '/'}: {problem.message}" for problem in problems)
        raise CaseError(f"{lines}\n{manifest_path} is not valid (maestro plan --local shows where)")
    return manifest, plan_build(manifest).as_dict()


def default_bundles() -> Path:
    """The policy bundles of the installed MC (``policy/bundles``).

    Found from the engine's module, not ``importlib.resources.files("policy")``: a
    ``policy/`` directory in the working directory would be taken for that package.
    """
    return Path(policy_engine.__file__).resolve().parent.parent / "bundles"


def cases_run(
    manifest: dict[str, Any], plan: dict[str, Any], cases: Sequence[PolicyCase], bundles: Path
) -> list[CaseResult]:
    """Evaluate every case's packs on the input document of its request."""
    with RegoEngine([load_bundle(bundles / pack, name=pack) for pack in PACKS], TIMEOUT_SECONDS) as engine:
        results = []
        for case in cases:
            document = policy_document(
                manifest, plan, stage=case.stage, region=case.region, limits=case.limits, usage=case.usage
            )
            results.append(CaseResult(case, [engine.evaluate(pack, document) for pack in STAGE_PACKS[case.stage]]))
        return results


def report(result: CaseResult, out: TextIO) -> None:
    """One line per case; for a failure, what differs and every finding with its message."""
    case = result.case
    where = f"{case.stage}, region {case.region or '(none)'}"
    if result.passed:
        out.write(f"ok    {case.path} ({where})\n")
        return
    out.write(f"FAIL  {case.path} ({where}): {case.description}\n")
    if result.deny != sorted(case.expect_deny):
        out.write(f"      deny: expected {sorted(case.expect_deny)}, got {result.deny}\n")
    if case.expect_warn is not None and result.warn != sorted(case.expect_warn):
        out.write(f"      warn: expected {sorted(case.expect_warn)}, got {result.warn}\n")
    for decision in result.decisions:
        for kind, items in (("deny", decision.deny), ("warn", decision.warn)):
            for item in items:
                out.write(f"      {decision.pack} {kind} {item['code']} at {item['path']}: {item['message']}\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """``python -m maestro.policytest``: run the cases, print a line each; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m maestro.policytest", description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", type=Path, default=[Path("policy-tests")], help="case files or directories")
    parser.add_argument("-m", "--manifest", type=Path, default=Path("workflow.yaml"), help="the workflow manifest")
    parser.add_argument("--bundles", type=Path, default=None, help="policy bundles (default: MC's own)")
    options = parser.parse_args(argv)
    try:
        files = case_files(options.cases)
        if not files:
            raise CaseError(f"no case files (*.json) in {', '.join(map(str, options.cases))}")
        cases = [case_load(path) for path in files]
    except CaseError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    try:
        manifest, plan = manifest_plan(options.manifest)
    except CaseError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    try:
        results = cases_run(manifest, plan, cases, options.bundles or default_bundles())
    except BundleError as exc:
        sys.stderr.write(f"cannot load MC's policy bundles: {exc} (give --bundles DIR)\n")
        return 2
    for result in results:
        report(result, out)
    failed = sum(not result.passed for result in results)
    out.write(f"{len(results)} policy case(s), {failed} failed\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
