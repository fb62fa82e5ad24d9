"""The artifact store: content-addressed objects on a django-storages backend.

Objects are addressed ``sha256:<hex>`` and stored under ``sha256/<aa>/<hex>``, so writing
the same bytes twice stores them once. The backend is ``STORAGES["artifacts"]``: local
files under ``var/artifacts`` by default, S3 (or any S3-compatible store) when
``MC_ARTIFACTS_S3_BUCKET`` is set.
"""

from __future__ import annotations

import hashlib
import re

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

_REF = re.compile(r"^sha256:([0-9a-f]{64})$")


class ArtifactNotFound(LookupError):
    pass


class ArtifactStore:
    """Put and get immutable objects by digest (implements the packages' ``ArtifactSink``)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or storages["artifacts"]

    @staticmethod
    def _name(hex_digest: str) -> str:
        return f"sha256/{hex_digest[:2]}/{hex_digest}"

    def put(self, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        hex_digest = hashlib.sha256(data).hexdigest()
        name = self._name(hex_digest)
        if not self.storage.exists(name):
            self.storage.save(name, ContentFile(data))
        return f"sha256:{hex_digest}"

    def get(self, ref: str) -> bytes:
        match = _REF.match(ref)
        if match is None:
            raise ArtifactNotFound(f"not an artifact reference: {ref!r}")
        name = self._name(match.group(1))
        if not self.storage.exists(name):
            raise ArtifactNotFound(ref)
        with self.storage.open(name, "rb") as handle:
            data: bytes = handle.read()
        return data

    def exists(self, ref: str) -> bool:
        match = _REF.match(ref)
        return match is not None and self.storage.exists(self._name(match.group(1)))
