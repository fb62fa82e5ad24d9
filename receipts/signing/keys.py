"""ECDSA P-256 signing keys as PEM: PKCS#8 private keys (optionally password-protected) and
SubjectPublicKeyInfo public keys, the ``PUBLIC KEY`` format ``cosign verify-blob --key`` reads.

A key's id is the lowercase hex SHA-256 of its public key's DER SubjectPublicKeyInfo, so anyone
can recompute it from the public key alone (``openssl pkey -pubin -outform DER | sha256sum``).
"""

from __future__ import annotations

import hashlib
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from receipts.signing.errors import KeyLoadError

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

ALGORITHM = "ecdsa-p256-sha256"
_ENCRYPTED_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\s*", re.DOTALL)


def generate_private_key() -> PrivateKey:
    """A new ECDSA key on NIST P-256."""
    return ec.generate_private_key(ec.SECP256R1())


def key_id(public_key: PublicKeyTypes) -> str:
    """Lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo (as Sigstore and RFC 6962 log ids)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def private_key_pem(private_key: PrivateKey, password: str | bytes | None = None) -> bytes:
    """PKCS#8 PEM; encrypted (PBES2, AES-256-CBC, as ``openssl pkcs8 -topk8`` writes) when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(_as_bytes(password)) if password else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_pem(public_key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``), the same format as ``cosign.pub``."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def is_encrypted_pem(pem: bytes) -> bool:
    return _ENCRYPTED_HEADER in pem


def load_private_key(pem: bytes, password: str | bytes | None = None, *, source: str = "the private key") -> PrivateKey:
    """Load a PKCS#8 PEM ECDSA P-256 private key.

    ``password`` is used only when the PEM is encrypted, so one password setting can serve a
    keyring that holds both kinds. ``source`` names the key in error messages.
    """
    header = _first_pem_type(pem)
    if header not in {"PRIVATE KEY", "ENCRYPTED PRIVATE KEY"}:
        found = f"found {header!r}" if header else "no PEM block found"
        raise KeyLoadError(f"{source} is not a PKCS#8 PEM private key ({found})")
    encrypted = header == "ENCRYPTED PRIVATE KEY"
    if encrypted and not password:
        raise KeyLoadError(f"{source} is encrypted: a password is needed (MC_SIGNING_KEY_PASSWORD)")
    try:
        key = serialization.load_pem_private_key(pem, _as_bytes(password) if encrypted else None)
    except ValueError as exc:
        reason = "wrong password" if encrypted and "password" in str(exc).lower() else str(exc)
        raise KeyLoadError(f"{source} cannot be loaded: {reason}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyLoadError(f"{source} is not an ECDSA key (got {type(key).__name__})")
    _check_curve(key.curve, source)
    return key


def load_public_key(pem: bytes, *, source: str = "the public key") -> PublicKey:
    """Load one SubjectPublicKeyInfo PEM ECDSA P-256 public key (the first block of ``pem``)."""
    keys = load_public_keys(pem, source=source)
    return keys[0]


def load_public_keys(pem: bytes, *, source: str = "the public key file") -> list[PublicKey]:
    """Load every ``PUBLIC KEY`` block of ``pem`` (``mc_keys export-public --all`` writes several)."""
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem) if match.group(1) == b"PUBLIC KEY"]
    if not blocks:
        header = _first_pem_type(pem)
        found = f"found {header!r}" if header else "no PEM block found"
        raise KeyLoadError(f"{source} holds no PEM public key ({found})")
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise KeyLoadError(f"{source} cannot be loaded: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyLoadError(f"{source} holds a {type(key).__name__}, not an ECDSA P-256 public key")
        _check_curve(key.curve, source)
        keys.append(key)
    return keys


def _check_curve(curve: ec.EllipticCurve, source: str) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise KeyLoadError(f"{source} is on curve {curve.name}, not P-256 (secp256r1)")


def _first_pem_type(pem: bytes) -> str | None:
    match = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----", pem)
    return match.group(1).decode() if match else None


def _as_bytes(password: str | bytes | None) -> bytes:
    if password is None:
        return b""
    return password.encode() if isinstance(password, str) else password
