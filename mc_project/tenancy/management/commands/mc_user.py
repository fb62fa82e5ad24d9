"""``manage.py mc_user create USERNAME --tenant SLUG --role ROLE [--password P] [--staff]``."""

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mc_project.errors import ApplicationError
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import user_create


class Command(BaseCommand):
    help = "Create a user in a tenant with a role."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a user.")
        create.add_argument("username")
        create.add_argument("--tenant", required=True, help="Tenant slug.")
        create.add_argument("--role", required=True, choices=Role.values)
        create.add_argument(
            "--password", help="Password for the admin and browsable API (asked if omitted and --staff)."
        )
        create.add_argument("--email", default="")
        create.add_argument("--staff", action="store_true", help="May use the Django admin.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}; create it with mc_tenant create.")
        password = options["password"]
        if password is None and options["staff"]:
            password = getpass.getpass("Password: ")
        try:
            user = user_create(
                username=options["username"],
                tenant=tenant,
                role=options["role"],
                password=password,
                email=options["email"],
                staff=options["staff"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"created user {user.get_username()} in {tenant.slug} as {options['role']}")
