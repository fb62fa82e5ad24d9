"""Manage policy packs: load the bundles, run their Rego tests, evaluate an input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mc_project.errors import ApplicationError
from policy.choices import PACKS
from policy.engine import BundleError, RegoEngine, load_bundle
from policy.engine.bundle import _read_dir
from policy.services import BUNDLES_DIR, bundle_activate
from policy.testing import run_all


class Command(BaseCommand):
    help = "sync: load policy/bundles/ and activate each pack; test: run the Rego unit tests; eval: decide an input."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sync = sub.add_parser("sync", help="load every bundle directory and make it its pack's active revision")
        sync.add_argument("--path", type=Path, default=BUNDLES_DIR)
        test = sub.add_parser("test", help="run every pack's *_test.rego tests; exit 1 if one fails")
        test.add_argument("--path", type=Path, default=BUNDLES_DIR)
        evaluate = sub.add_parser("eval", help="evaluate the packs on an input document (mc.policy/v1)")
        evaluate.add_argument("--input", type=Path, required=True, help="a JSON file, or - for standard input")
        evaluate.add_argument("--pack", action="append", choices=PACKS, help="only these packs (repeatable)")
        evaluate.add_argument("--path", type=Path, default=BUNDLES_DIR)

    def handle(self, *args: Any, action: str, path: Path, **options: Any) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a directory of bundles")
        getattr(self, f"_{action}")(path, **options)

    def _sync(self, root: Path, **_: Any) -> None:
        failed = []
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                row, created = bundle_activate(pack=directory.name, files=_read_dir(directory))
            except (ApplicationError, BundleError) as exc:
                details = "; ".join(d["message"] for d in getattr(exc, "details", [])) or str(exc)
                self.stderr.write(f"{directory.name}: refused: {details} (the active revision stays)")
                failed.append(directory.name)
                continue
            state = "new revision, active" if created else "unchanged, active"
            self.stdout.write(f"{row.pack}: {row.revision} {row.digest[:19]}… {state}")
        if failed:
            raise CommandError(f"refused: {', '.join(failed)}")

    def _test(self, root: Path, **_: Any) -> None:
        failures = 0
        for bundle, results in run_all(root).items():
            passed = sum(result.passed for result in results)
            self.stdout.write(f"{bundle}: {passed}/{len(results)} passed")
            for result in results:
                if not result.passed:
                    failures += 1
                    self.stdout.write(f"  FAIL {result.package}.{result.name}: {result.error or 'false'}")
        if failures:
            raise CommandError(f"{failures} Rego test(s) failed")

    def _eval(self, root: Path, *, input: Path, pack: list[str] | None, **_: Any) -> None:
        try:
            text = self.stdin.read() if str(input) == "-" else input.read_text()
            document = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read the input: {exc}") from exc
        if not isinstance(document, dict):
            raise CommandError("the input must be a JSON object (docs/policy.md)")
        try:
            bundles = [load_bundle(root / name, name=name) for name in (pack or PACKS)]
        except BundleError as exc:
            raise CommandError(str(exc)) from exc
        with RegoEngine(bundles) as engine:
            decisions = engine.evaluate_all(document)
        out = [
            {"pack": d.pack, "result": d.result, "revision": d.revision, "deny": d.deny, "warn": d.warn}
            for d in decisions
        ]
        self.stdout.write(json.dumps(out, indent=2))

    @property
    def stdin(self) -> Any:
        import sys

        return sys.stdin
