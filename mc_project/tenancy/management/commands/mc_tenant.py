"""``manage.py mc_tenant create SLUG [--name NAME]`` and ``mc_tenant list``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mc_project.errors import ApplicationError
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import tenant_create


class Command(BaseCommand):
    help = "Create or list tenants."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a tenant.")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        sub.add_parser("list", help="List tenants.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            for tenant in Tenant.objects.all():
                self.stdout.write(f"{tenant.slug}\t{tenant.name}\t{tenant.id}")
            return
        try:
            tenant = tenant_create(slug=options["slug"], name=options["name"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except Exception as exc:  # a model validation error names the bad field
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created tenant {tenant.slug} ({tenant.id})")
