"""``manage.py mc_token create USERNAME [--name N]``, ``mc_token list [USERNAME]``, ``mc_token revoke PREFIX``."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mc_project.tenancy.models import ApiToken
from mc_project.tenancy.services import token_create, token_revoke


class Command(BaseCommand):
    help = "Issue, list and revoke API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Issue a token; it is printed once.")
        create.add_argument("username")
        create.add_argument("--name", default="default")
        listing = sub.add_parser("list", help="List tokens.")
        listing.add_argument("username", nargs="?")
        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix.")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, *, username: str, name: str, **_: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        _token, raw = token_create(user=user, name=name)
        self.stdout.write(raw)

    def _list(self, *, username: str | None, **_: Any) -> None:
        tokens = ApiToken.objects.select_related("user")
        if username:
            tokens = tokens.filter(user__username=username)
        for t in tokens:
            state = "revoked" if t.revoked_at else "active"
            self.stdout.write(
                f"{t.prefix}\t{t.user.get_username()}\t{t.name}\t{state}\tlast used {t.last_used_at or 'never'}"
            )

    def _revoke(self, *, prefix: str, **_: Any) -> None:
        matches = list(ApiToken.objects.filter(prefix__startswith=prefix, revoked_at__isnull=True)[:2])
        if len(matches) != 1:
            raise CommandError(f"{len(matches) or 'No'} active token(s) match {prefix!r}; give a longer prefix.")
        token_revoke(token=matches[0])
        self.stdout.write(f"revoked {matches[0].prefix}")
