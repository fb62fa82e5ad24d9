"""Manage receipt signing keys: generate, rotate, list, export-public (docs/receipts.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from receipts.signing import KeyRecord, Keyring, PublicKey, SigningError, key_id, public_key_pem
from receipts.signing.runtime import signing_public_key, signing_status


class Command(BaseCommand):
    help = "Manage receipt signing keys: generate, rotate, list, export-public. Needs no database."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        generate = sub.add_parser("generate", help="create the keyring's first active key")
        rotate = sub.add_parser("rotate", help="new active key; the old one retires (its public key stays)")
        listing = sub.add_parser("list", help="every key with its status; checks that MC can sign")
        export = sub.add_parser("export-public", help="write a public key as PEM (default: the signing key)")
        for command in (generate, rotate, listing, export):
            command.add_argument("--dir", dest="directory", type=Path, help="keyring directory (default: MC_KEYS_DIR)")
        for command in (generate, rotate):
            command.add_argument(
                "--password-env",
                metavar="NAME",
                help="encrypt the private key with the password in environment variable NAME"
                " (MC reads it from MC_SIGNING_KEY_PASSWORD)",
            )
        listing.add_argument("--json", dest="as_json", action="store_true", help="the index as JSON")
        export.add_argument(
            "key", nargs="?", metavar="KEY_ID", help="a key id, or a unique prefix of one (default: the signing key)"
        )
        export.add_argument("--all", dest="all_keys", action="store_true", help="every public key, active and retired")
        export.add_argument("--out", type=Path, help="write to this file instead of standard output")

    def handle(self, *args: Any, action: str, directory: Path | None, **options: Any) -> None:
        ring = Keyring(directory or settings.MC_KEYS_DIR)
        # The status of MC's own signer is only shown for MC's own keyring.
        configured = directory is None or directory.resolve() == Path(settings.MC_KEYS_DIR).resolve()
        try:
            getattr(self, "_" + action.replace("-", "_"))(ring, configured=configured, **options)
        except SigningError as exc:
            raise CommandError(str(exc)) from exc

    def _generate(self, ring: Keyring, *, configured: bool, password_env: str | None, **_: Any) -> None:
        self._refuse_external_key(configured, "generate")
        record = ring.generate(_password(password_env))
        self.stdout.write(f"generated key {record.key_id} in {ring.directory}: active")
        self._describe_files(ring, record)

    def _rotate(self, ring: Keyring, *, configured: bool, password_env: str | None, **_: Any) -> None:
        self._refuse_external_key(configured, "rotate")
        record, retired = ring.rotate(_password(password_env))
        self.stdout.write(f"new active key {record.key_id} in {ring.directory}")
        self._describe_files(ring, record)
        if retired is not None:
            self.stdout.write(
                f"retired key {retired.key_id}: private key deleted, public key kept to verify its receipts"
            )

    def _list(self, ring: Keyring, *, configured: bool, as_json: bool, **_: Any) -> None:
        records = ring.records()
        if as_json:
            self.stdout.write(json.dumps([record.to_json() for record in records], indent=2))
        elif not records:
            self.stdout.write(f"no keys in {ring.directory}")
        else:
            self.stdout.write(f"{'KEY ID':64}  {'STATUS':7}  {'SOURCE':14}  {'CREATED':25}  RETIRED")
            for record in records:
                self.stdout.write(_row(record))
        if configured:
            status = signing_status()
            if not status.ok:
                raise CommandError(status.description)
            if not as_json:
                self.stdout.write(status.description)

    def _export_public(
        self, ring: Keyring, *, configured: bool, key: str | None, all_keys: bool, out: Path | None, **_: Any
    ) -> None:
        if all_keys and key:
            raise CommandError("give a key id or --all, not both")
        if all_keys:
            keys = ring.public_keys()
            if not keys:
                raise CommandError(f"no keys in {ring.directory}")
        elif key:
            keys = [ring.public_key(_find(ring.records(), key).key_id)]
        else:
            current = signing_public_key() if configured else _active_public_key(ring)
            if current is None:
                raise CommandError(f"no active key in {ring.directory} (manage.py mc_keys generate)")
            keys = [current]
        pem = b"".join(public_key_pem(key) for key in keys)
        if out is None:
            self.stdout.write(pem.decode(), ending="")
            return
        try:
            out.write_bytes(pem)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror}") from exc
        ids = ", ".join(key_id(public_key) for public_key in keys)
        self.stdout.write(f"wrote the public key{'s' if len(keys) > 1 else ''} {ids} to {out}")

    def _refuse_external_key(self, configured: bool, action: str) -> None:
        if configured and settings.MC_SIGNING_KEY is not None:
            raise CommandError(
                f"MC signs with MC_SIGNING_KEY {settings.MC_SIGNING_KEY}, not with the keyring: to {action},"
                " replace that file (MC records the new key in the keyring when it first signs with it)"
            )

    def _describe_files(self, ring: Keyring, record: KeyRecord) -> None:
        encrypted = "encrypted" if record.encrypted else "not encrypted"
        self.stdout.write(f"  private key {ring.private_key_path(record.key_id)} (mode 0600, {encrypted})")
        self.stdout.write(f"  public key  {ring.public_key_path(record.key_id)}")


def _password(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise CommandError(f"--password-env {variable}: that environment variable is not set or empty")
    return value


def _find(records: list[KeyRecord], prefix: str) -> KeyRecord:
    matches = [record for record in records if record.key_id.startswith(prefix.lower())]
    if not matches:
        raise CommandError(f"no key id starts with {prefix!r}")
    if len(matches) > 1:
        raise CommandError(f"{prefix!r} is the start of {len(matches)} key ids: give more of it")
    return matches[0]


def _active_public_key(ring: Keyring) -> PublicKey | None:
    active = ring.active()
    return ring.public_key(active.key_id) if active else None


def _row(record: KeyRecord) -> str:
    created = record.created_at.isoformat(timespec="seconds")
    retired = record.retired_at.isoformat(timespec="seconds") if record.retired_at else "-"
    return f"{record.key_id:64}  {record.status:7}  {record.source:14}  {created:25}  {retired}"
