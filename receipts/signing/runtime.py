"""The signer and the verification keys that MC's settings describe (the only Django-aware module here).

``MC_SIGNER=key`` (default): the private key comes from ``MC_SIGNING_KEY`` when set (and is
adopted into the keyring, so its public key outlives the file), otherwise from the keyring in
``MC_KEYS_DIR``. Outside production a missing keyring is created on first use; production
refuses to start without one (``mc_project.env``). ``MC_SIGNER=sigstore``: keyless, see
``receipts.signing.sigstore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from receipts.signing.dsse import KeySigner, Signer
from receipts.signing.errors import KeyLoadError, SigningError
from receipts.signing.keyring import Keyring
from receipts.signing.keys import PrivateKey, PublicKey, key_id, load_private_key

if TYPE_CHECKING:
    from receipts.signing.sigstore import SigstorePolicy


def keyring() -> Keyring:
    return Keyring(settings.MC_KEYS_DIR)


def get_signer() -> Signer:
    """The signer for new receipts. Raises ``SigningError`` (a subclass) when it cannot sign."""
    if settings.MC_SIGNER == "sigstore":
        from receipts.signing.sigstore import SigstoreSigner

        return SigstoreSigner.from_files(
            trust_config=settings.MC_SIGSTORE_TRUST_CONFIG,
            identity_token_file=settings.MC_SIGSTORE_IDENTITY_TOKEN_FILE,
        )
    return key_signer()


def key_signer() -> KeySigner:
    """The key signer: ``MC_SIGNING_KEY`` (adopted into the keyring) or the keyring's active key."""
    password = settings.MC_SIGNING_KEY_PASSWORD or None
    ring = keyring()
    if settings.MC_SIGNING_KEY is not None:
        signer = KeySigner(external_signing_key(settings.MC_SIGNING_KEY, password))
        ring.adopt(signer.public_key)
        return signer
    if settings.MC_ENV != "production":
        ring.ensure_key(password)
    return ring.signer(password)


def external_signing_key(path: Path, password: str | None) -> PrivateKey:
    """Load the private key ``MC_SIGNING_KEY`` names."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"MC_SIGNING_KEY {path} cannot be read: {exc.strerror}") from None
    return load_private_key(pem, password, source=f"MC_SIGNING_KEY {path}")


def verification_keys() -> list[PublicKey]:
    """Every public key MC has signed with (active and retired): what its own verification trusts.

    ``MC_SIGNING_KEY``'s public key is trusted even before this process's keyring adopted it:
    on Kubernetes each pod has a keyring directory of its own, and an API pod that verifies
    never signs (deploy/README.md).
    """
    keys = keyring().public_keys()
    if settings.MC_SIGNER == "key" and settings.MC_SIGNING_KEY is not None:
        current = external_signing_key(settings.MC_SIGNING_KEY, settings.MC_SIGNING_KEY_PASSWORD or None).public_key()
        if key_id(current) not in {key_id(key) for key in keys}:
            keys.append(current)
    return keys


def sigstore_policy() -> SigstorePolicy:
    """Whose keyless signatures MC trusts, and the trusted root to check them offline."""
    from receipts.signing.sigstore import SigstorePolicy

    return SigstorePolicy.from_files(
        identity=settings.MC_SIGSTORE_IDENTITY,
        issuer=settings.MC_SIGSTORE_ISSUER,
        trusted_root=settings.MC_SIGSTORE_TRUSTED_ROOT,
        trust_config=settings.MC_SIGSTORE_TRUST_CONFIG,
    )


@dataclass(frozen=True)
class SigningStatus:
    """Whether MC can sign receipts now, and with what (``ok`` False: ``description`` says why not)."""

    ok: bool
    description: str


def signing_status() -> SigningStatus:
    """Check the configured signer without changing anything: no key generated, none adopted."""
    if settings.MC_SIGNER == "sigstore":
        return SigningStatus(True, "MC signs keyless with Sigstore (MC_SIGNER=sigstore); keys here only verify")
    password = settings.MC_SIGNING_KEY_PASSWORD or None
    try:
        if settings.MC_SIGNING_KEY is not None:
            signer = KeySigner(external_signing_key(settings.MC_SIGNING_KEY, password))
            source = f"MC_SIGNING_KEY {settings.MC_SIGNING_KEY}"
            return SigningStatus(True, f"MC signs with key {signer.key_id} from {source}")
        ring = keyring()
        if ring.active() is None:
            if settings.MC_ENV == "production":
                return SigningStatus(False, f"no active key in {ring.directory}: production refuses to start")
            return SigningStatus(True, f"no key yet: MC generates one in {ring.directory} when it first signs")
        return SigningStatus(True, f"MC signs with key {ring.signer(password).key_id} from the keyring")
    except SigningError as exc:
        return SigningStatus(False, f"MC cannot sign: {exc}")


def signing_public_key() -> PublicKey | None:
    """The public key of the key MC signs with now (``MC_SIGNING_KEY``'s or the keyring's active), if any."""
    if settings.MC_SIGNING_KEY is not None:
        return external_signing_key(settings.MC_SIGNING_KEY, settings.MC_SIGNING_KEY_PASSWORD or None).public_key()
    ring = keyring()
    active = ring.active()
    return ring.public_key(active.key_id) if active else None
