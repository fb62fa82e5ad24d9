"""Export a run's disclosure bundle, or make the environment SBOM ahead of the first export."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mc_project.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "export ID -o FILE: write execution ID's disclosure bundle (.tgz; - for standard output);"
        " sbom: generate the environment SBOM now (e.g. at deploy), so no export waits for it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write an execution's disclosure bundle")
        export.add_argument("execution_id", help="the execution's id (any tenant)")
        export.add_argument("-o", "--output", required=True, help="the .tgz to write; - for standard output")
        sub.add_parser("sbom", help="generate (or find) the SBOM of this environment and print its path")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "sbom":
            self._sbom()
        else:
            self._export(options["execution_id"], options["output"])

    def _export(self, execution_id: str, output: str) -> None:
        from executions.models import Execution
        from receipts.disclosure import disclosure_get

        try:
            execution = Execution.objects.filter(pk=uuid.UUID(execution_id)).first()
        except ValueError:
            execution = None
        if execution is None:
            raise CommandError(f"No execution {execution_id}.")
        try:
            data = disclosure_get(execution=execution)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        if output == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from exc
        self.stderr.write(f"{output}: disclosure bundle of execution {execution.pk}, {len(data)} bytes")

    def _sbom(self) -> None:
        from receipts.sbom import SbomUnavailable, sbom_json, sbom_path

        try:
            sbom_json()
        except SbomUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(sbom_path()))
