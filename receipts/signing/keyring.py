"""MC's signing keys on disk: one active key signs, retired public keys stay for verification.

Layout of the directory (default ``<MC_VAR_DIR>/keys``, created mode 0700)::

    keyring.json          the index: every key with its source and times; the active one has no retired_at
    <key id>.pub.pem      public key (SubjectPublicKeyInfo PEM), kept forever
    <key id>.key.pem      private key (PKCS#8 PEM, mode 0600), only for the active key

Rotation writes a new active key, retires the old one and deletes its private key: a retired
key can never sign again, but receipts it signed still verify. A key MC signs with from
``MC_SIGNING_KEY`` (a file kept elsewhere) is *adopted*: its public key is recorded here as
the active key, so receipts stay verifiable after that file is replaced.

Every change happens under an exclusive lock on ``.lock`` and replaces the index atomically,
so processes that generate the embedded default key at the same moment agree on one key.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receipts.signing.dsse import KeySigner
from receipts.signing.errors import KeyringError
from receipts.signing.keys import (
    ALGORITHM,
    PublicKey,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)

INDEX_NAME = "keyring.json"
INDEX_FORMAT = "mc.keyring/v1"
SOURCE_KEYRING = "keyring"
SOURCE_EXTERNAL = "MC_SIGNING_KEY"


@dataclass(frozen=True)
class KeyRecord:
    """One key of the keyring, as listed in its index."""

    key_id: str
    created_at: datetime
    retired_at: datetime | None
    source: str
    encrypted: bool
    algorithm: str = ALGORITHM

    @property
    def active(self) -> bool:
        return self.retired_at is None

    @property
    def status(self) -> str:
        return "active" if self.active else "retired"

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "source": self.source,
            "encrypted": self.encrypted,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "retired_at": self.retired_at.isoformat(timespec="seconds") if self.retired_at else None,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> KeyRecord:
        retired = row.get("retired_at")
        return cls(
            key_id=str(row["key_id"]),
            algorithm=str(row.get("algorithm", ALGORITHM)),
            source=str(row.get("source", SOURCE_KEYRING)),
            encrypted=bool(row.get("encrypted", False)),
            created_at=datetime.fromisoformat(row["created_at"]),
            retired_at=datetime.fromisoformat(retired) if retired else None,
        )


class Keyring:
    """The signing keys in ``directory``; see the module docstring for the layout."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.index_path = self.directory / INDEX_NAME

    def __repr__(self) -> str:
        return f"Keyring({str(self.directory)!r})"

    # --- reads ----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.index_path.is_file()

    def records(self) -> list[KeyRecord]:
        """Every key, oldest first; empty when the keyring does not exist yet."""
        if not self.exists():
            return []
        try:
            index = json.loads(self.index_path.read_text())
            if index.get("format") != INDEX_FORMAT:
                raise ValueError(f"format is {index.get('format')!r}, expected {INDEX_FORMAT!r}")
            return [KeyRecord.from_json(row) for row in index["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring index {self.index_path} cannot be read: {exc}") from None

    def active(self) -> KeyRecord | None:
        return next((record for record in self.records() if record.active), None)

    def public_key(self, key_id_: str) -> PublicKey:
        path = self.public_key_path(key_id_)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyringError(f"public key of {key_id_} cannot be read: {exc}") from None
        key = load_public_key(pem, source=str(path))
        if key_id(key) != key_id_:
            raise KeyringError(f"{path} holds key {key_id(key)}, not {key_id_}")
        return key

    def public_keys(self) -> list[PublicKey]:
        """The public key of every key, active and retired: what verification needs."""
        return [self.public_key(record.key_id) for record in self.records()]

    def signer(self, password: str | bytes | None = None) -> KeySigner:
        """A signer for the active key, whose private key must be in this directory."""
        record = self.active()
        if record is None:
            raise KeyringError(f"keyring {self.directory} has no active key (manage.py mc_keys generate)")
        if record.source != SOURCE_KEYRING:
            raise KeyringError(
                f"the active key {record.key_id} comes from {record.source}: its private key is not in the keyring"
            )
        path = self.private_key_path(record.key_id)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyringError(f"private key of the active key {record.key_id} cannot be read: {exc}") from None
        signer = KeySigner(load_private_key(pem, password, source=str(path)))
        if signer.key_id != record.key_id:
            raise KeyringError(f"{path} holds key {signer.key_id}, not the active key {record.key_id}")
        return signer

    def public_key_path(self, key_id_: str) -> Path:
        return self.directory / f"{key_id_}.pub.pem"

    def private_key_path(self, key_id_: str) -> Path:
        return self.directory / f"{key_id_}.key.pem"

    # --- writes ---------------------------------------------------------------------
    def generate(self, password: str | bytes | None = None) -> KeyRecord:
        """Create the first active key; refused when there is one already (that is ``rotate``)."""
        with self._locked() as records:
            if (current := _active(records)) is not None:
                raise KeyringError(f"keyring {self.directory} already has an active key {current.key_id}; rotate it")
            record = self._new_key(password)
            self._write_index([*records, record])
            return record

    def ensure_key(self, password: str | bytes | None = None) -> KeyRecord:
        """The active key, generated first if there is none (the embedded default's first use)."""
        if (current := self.active()) is not None:
            return current
        with self._locked() as records:
            if (current := _active(records)) is not None:
                return current  # another process generated it while we waited for the lock
            record = self._new_key(password)
            self._write_index([*records, record])
            return record

    def rotate(self, password: str | bytes | None = None) -> tuple[KeyRecord, KeyRecord | None]:
        """Make a new active key; retire the old one and delete its private key. Returns (new, old)."""
        with self._locked() as records:
            current = _active(records)
            record = self._new_key(password)
            retired = replace(current, retired_at=record.created_at) if current else None
            rows = [retired if retired is not None and r.key_id == retired.key_id else r for r in records]
            self._write_index([*rows, record])
            if current is not None:
                self.private_key_path(current.key_id).unlink(missing_ok=True)
            return record, retired

    def adopt(self, public_key: PublicKey) -> KeyRecord:
        """Record an external signing key (``MC_SIGNING_KEY``) as the active key; idempotent."""
        adopted_id = key_id(public_key)
        current = self.active()
        if current is not None and current.key_id == adopted_id:
            return current
        with self._locked() as records:
            now = _now()
            rows: list[KeyRecord] = []
            adopted: KeyRecord | None = None
            for record in records:
                if record.key_id == adopted_id:
                    adopted = replace(record, retired_at=None)
                    continue
                rows.append(replace(record, retired_at=now) if record.active else record)
            if adopted is None:
                self._write_public_key(public_key)
                adopted = KeyRecord(
                    key_id=adopted_id, created_at=now, retired_at=None, source=SOURCE_EXTERNAL, encrypted=False
                )
            self._write_index([*rows, adopted])
            for record in rows:
                if record.source == SOURCE_KEYRING:
                    self.private_key_path(record.key_id).unlink(missing_ok=True)
            return adopted

    def _new_key(self, password: str | bytes | None) -> KeyRecord:
        private_key = generate_private_key()
        record = KeyRecord(
            key_id=key_id(private_key.public_key()),
            created_at=_now(),
            retired_at=None,
            source=SOURCE_KEYRING,
            encrypted=bool(password),
        )
        _write_private(self.private_key_path(record.key_id), private_key_pem(private_key, password))
        self._write_public_key(private_key.public_key())
        return record

    def _write_public_key(self, public_key: PublicKey) -> None:
        path = self.public_key_path(key_id(public_key))
        _write_atomic(path, public_key_pem(public_key), mode=0o644)

    def _write_index(self, records: list[KeyRecord]) -> None:
        index = {"format": INDEX_FORMAT, "keys": [record.to_json() for record in records]}
        _write_atomic(self.index_path, (json.dumps(index, indent=2) + "\n").encode(), mode=0o644)

    @contextmanager
    def _locked(self) -> Iterator[list[KeyRecord]]:
        """Hold the keyring's lock; yield its records as they are once the lock is held."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyringError(f"keyring directory {self.directory} cannot be used: {exc}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self.records()
        finally:
            os.close(lock)


def _active(records: list[KeyRecord]) -> KeyRecord | None:
    return next((record for record in records if record.active), None)


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(microsecond=0)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, from the first byte on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyringError(f"private key file {path} cannot be created: {exc}") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.chmod(mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeyringError(f"{path} cannot be written: {exc}") from None
