"""Set up the demo: tenant, user, API token, and the example workflow, published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from mc_project.errors import ApplicationError
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import ApiToken, Tenant, token_hash
from mc_project.tenancy.services import tenant_create, token_create, user_create
from workflows.manifest import ManifestError, parse_manifest
from workflows.models import Workflow
from workflows.services import draft_save, latest_published, workflow_create, workflow_publish

DEMO_TENANT = "demo"
DEMO_USER = "demo"
DEMO_PASSWORD = "maestro-demo"  # noqa: S105 - a local demo login, printed for the user
EXAMPLE = Path(settings.BASE_DIR) / "docs" / "examples" / "hello.yaml"


def _error_text(exc: ApplicationError | ManifestError) -> str:
    """The message and every problem under it, one per line, as the API would list them."""
    problems = (
        [(p.path, p.message) for p in exc.problems]
        if isinstance(exc, ManifestError)
        else [(d.get("path", ""), d.get("message", "")) for d in exc.details]
    )
    return "\n".join([exc.message, *(f"  {path or '/'}: {message}" for path, message in problems)])


class Command(BaseCommand):
    help = "Create the demo tenant, user and token, and publish docs/examples/hello.yaml."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the server will listen.")
        parser.add_argument("--manifest", type=Path, default=EXAMPLE, help="Workflow manifest to load.")

    def handle(self, *args: Any, url: str, manifest: Path, **options: Any) -> None:
        try:
            doc = parse_manifest(manifest.read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {manifest}: {exc}") from exc
        except ManifestError as exc:
            raise CommandError(f"{manifest}: {_error_text(exc)}") from exc
        try:
            with transaction.atomic():
                user, token = self._account()
                version = self._publish(user, doc)
        except (ApplicationError, ManifestError) as exc:
            raise CommandError(_error_text(exc)) from exc
        self._report(url.rstrip("/"), token, version)

    def _account(self) -> tuple[User, str]:
        tenant = Tenant.objects.filter(slug=DEMO_TENANT).first() or tenant_create(slug=DEMO_TENANT, name="Demo")
        user = User.objects.filter(username=DEMO_USER).first() or user_create(
            username=DEMO_USER, tenant=tenant, role=Role.ADMIN, password=DEMO_PASSWORD, staff=True
        )
        token_file = settings.VAR_DIR / "demo_token"
        if token_file.exists():
            raw = token_file.read_text().strip()
            if ApiToken.objects.filter(key_hash=token_hash(raw), revoked_at__isnull=True).exists():
                return user, raw
        _, raw = token_create(user=user, name="demo")
        token_file.write_text(raw)
        token_file.chmod(0o600)
        return user, raw

    def _publish(self, user: Any, doc: dict[str, Any]) -> Any:
        workflow = Workflow.objects.filter(tenant__slug=DEMO_TENANT, name=doc["name"]).first()
        if workflow is None:
            workflow = workflow_create(tenant=user.membership.tenant, actor=user, manifest=doc)
        else:
            latest = latest_published(workflow)
            if latest is not None and {**doc, "version": latest.version} == latest.manifest:
                return latest  # already published, unchanged
            draft_save(workflow=workflow, actor=user, manifest=doc)
        return workflow_publish(workflow=workflow, actor=user).version

    def _report(self, url: str, token: str, version: Any) -> None:
        wf = version.workflow
        lines = [
            "",
            "Maestro Conductor demo is ready (embedded mode: SQLite + filesystem broker under var/).",
            "",
            f"  API (browsable)   {url}/api/workflows",
            f"  Admin             {url}/admin/",
            f"  OpenAPI docs      {url}/api/docs/",
            f"  Manifest schema   {url}/api/schemas/manifest.v1.json",
            f"  Health            {url}/healthz   {url}/readyz",
            "",
            f"  Login             {DEMO_USER} / {DEMO_PASSWORD}   (tenant '{DEMO_TENANT}', role admin)",
            f"  API token         {token}",
            "",
            f"  Published         {wf.name}@{version.version}  sha256:{version.digest}",
            "",
            "Try next:",
            f"  export MAESTRO_URL={url} MAESTRO_TOKEN={token}",
            '  curl -s -H "Authorization: Token $MAESTRO_TOKEN" $MAESTRO_URL/api/workflows',
            f'  curl -s -H "Authorization: Token $MAESTRO_TOKEN" $MAESTRO_URL/api/workflows/{wf.id}/versions',
            f'  curl -s -H "Authorization: Token $MAESTRO_TOKEN" $MAESTRO_URL/api/snapshots/sha256:{version.digest}',
            "  # edit the draft, then publish a minor version:",
            f'  curl -s -X PUT -H "Authorization: Token $MAESTRO_TOKEN" -H "Content-Type: application/yaml" \\\n'
            f"       --data-binary @docs/examples/hello.yaml $MAESTRO_URL/api/workflows/{wf.id}/draft",
            f'  curl -s -X POST -H "Authorization: Token $MAESTRO_TOKEN" -H "Content-Type: application/json" \\\n'
            f'       -d \'{{"bump": "minor"}}\' $MAESTRO_URL/api/workflows/{wf.id}/publish',
            "",
        ]
        self.stdout.write("\n".join(lines))
