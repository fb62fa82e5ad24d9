"""DSSE envelopes over in-toto statements: sign with a key, verify offline with public keys.

An envelope is the JSON object ::

    {"payload": base64(statement bytes),
     "payloadType": "application/vnd.in-toto+json",
     "signatures": [{"keyid": "<key id>", "sig": base64(DER ECDSA signature)}]}

and each ``sig`` is ECDSA P-256 over SHA-256 of the PAE (pre-authentication encoding)
``DSSEv1 <len(payloadType)> <payloadType> <len(payload)> <payload>``, lengths in ASCII decimal
bytes: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md. The signature is
DER-encoded, so ``openssl dgst -sha256 -verify`` checks it as is (docs/receipts.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from receipts.signing.errors import VerificationError
from receipts.signing.keys import PrivateKey, PublicKey, key_id
from receipts.signing.statement import Statement, StatementError, check_statement
from workflows.manifest.canonical import canonical_json

PAYLOAD_TYPE = "application/vnd.in-toto+json"
# A Sigstore bundle (keyless signing) carries the envelope as "dsseEnvelope", beside its
# certificate and Rekor entry; receipts.signing.sigstore verifies it.
SIGSTORE_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle"


@dataclass(frozen=True)
class SignedStatement:
    """What a signer returns: the DSSE envelope, and for keyless signing the whole Sigstore bundle.

    ``key_id`` names the key that signed (for Sigstore: the short-lived key in the
    certificate). ``sigstore_bundle`` holds the same envelope plus the Fulcio certificate and
    the Rekor entry; it is what a verifier of a keyless receipt needs.
    """

    envelope: dict[str, Any]
    signer: str
    key_id: str
    sigstore_bundle: dict[str, Any] | None = None


class Signer(Protocol):
    """Signs the canonical bytes of an in-toto statement into a DSSE envelope."""

    kind: str

    def sign_payload(self, payload: bytes) -> SignedStatement: ...


class KeySigner:
    """The default signer: an ECDSA P-256 private key held by MC."""

    kind = "key"

    def __init__(self, private_key: PrivateKey) -> None:
        self._private_key = private_key
        self.public_key: PublicKey = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def __repr__(self) -> str:
        return f"KeySigner(key_id={self.key_id!r})"

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA signature over SHA-256 of ``data``."""
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def sign_payload(self, payload: bytes) -> SignedStatement:
        signature = self.sign(pae(PAYLOAD_TYPE, payload))
        envelope = {
            "payload": _b64encode(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": self.key_id, "sig": _b64encode(signature)}],
        }
        return SignedStatement(envelope=envelope, signer=self.kind, key_id=self.key_id)


def is_sigstore_bundle(document: Any) -> bool:
    return isinstance(document, Mapping) and str(document.get("mediaType", "")).startswith(SIGSTORE_BUNDLE_MEDIA_TYPE)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes a signature covers."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_statement(statement: Mapping[str, Any], signer: Signer) -> SignedStatement:
    """Sign ``statement`` (checked to be an in-toto Statement v1) as its RFC 8785 canonical JSON."""
    document = check_statement(dict(statement))
    return signer.sign_payload(canonical_json(document))


@dataclass(frozen=True)
class VerifiedEnvelope:
    """A verified envelope's statement, and the id of the key whose signature verified."""

    statement: Statement
    key_id: str


def verify_envelope(envelope: Any, public_keys: Iterable[PublicKey]) -> Statement:
    """Verify ``envelope`` against ``public_keys`` and return the statement it carries.

    One signature by one of the keys suffices. Raises ``VerificationError`` whose message
    says what failed and whose ``code`` says it for machines.
    """
    return verify_envelope_detailed(envelope, public_keys).statement


def verify_envelope_detailed(envelope: Any, public_keys: Iterable[PublicKey]) -> VerifiedEnvelope:
    """``verify_envelope``, also saying which key verified."""
    payload_type, payload, signatures = _parse_envelope(envelope)
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(
            f"wrong payloadType {payload_type!r}: MC receipts are {PAYLOAD_TYPE!r}", code="wrong_payload_type"
        )
    keys = {key_id(key): key for key in public_keys}
    if not keys:
        raise VerificationError("no public keys to verify with", code="no_keys")
    signed_by = _check_signatures(pae(payload_type, payload), signatures, keys)
    return VerifiedEnvelope(statement=statement_from_payload(payload), key_id=signed_by)


def _parse_envelope(envelope: Any) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    if not isinstance(envelope, Mapping):
        kind = type(envelope).__name__
        raise _malformed(f"expected a JSON object with payload, payloadType and signatures, got {kind}")
    for field in ("payload", "payloadType", "signatures"):
        if field not in envelope:
            raise _malformed(f"{field!r} is missing")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str):
        raise _malformed("'payloadType' must be a string")
    payload = _b64decode(envelope["payload"], "'payload'")
    raw_signatures = envelope["signatures"]
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise _malformed("'signatures' must be a non-empty list")
    signatures = []
    for index, item in enumerate(raw_signatures):
        where = f"signatures[{index}]"
        if not isinstance(item, Mapping):
            raise _malformed(f"{where} must be a JSON object")
        keyid = item.get("keyid") or ""
        if not isinstance(keyid, str):
            raise _malformed(f"{where}.keyid must be a string")
        if "sig" not in item:
            raise _malformed(f"{where}.sig is missing")
        signature = _b64decode(item["sig"], f"{where}.sig")
        if not signature:
            raise _malformed(f"{where}.sig is empty")
        signatures.append((keyid, signature))
    return payload_type, payload, signatures


def _check_signatures(message: bytes, signatures: list[tuple[str, bytes]], keys: dict[str, PublicKey]) -> str:
    """The id of a key whose signature verifies; otherwise raise, saying why each signature failed."""
    unknown, bad = [], []
    for index, (keyid, signature) in enumerate(signatures):
        # DSSE's keyid is an unauthenticated hint: without one, try every key.
        if keyid and keyid not in keys:
            unknown.append(f"signatures[{index}] is by key id {keyid}")
            continue
        candidates = [keyid] if keyid else list(keys)
        for candidate in candidates:
            try:
                keys[candidate].verify(signature, message, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return candidate
        bad.append(f"signatures[{index}] (key id {keyid or 'not given'})")
    if bad:
        raise VerificationError(
            f"bad signature: {', '.join(bad)} does not match the payload and payloadType"
            " (the envelope was changed after signing, or the signature belongs to another envelope)",
            code="bad_signature",
        )
    raise VerificationError(
        f"unknown key: {', '.join(unknown)}, which is not among the given public keys ({', '.join(sorted(keys))})",
        code="unknown_key",
    )


def statement_from_payload(payload: bytes) -> Statement:
    """Parse a verified payload strictly (UTF-8 JSON, no duplicate keys, no NaN) as a Statement v1."""
    try:
        doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"payload is not JSON: {exc}", code="payload_not_json") from None
    try:
        return check_statement(doc)
    except StatementError as exc:
        raise VerificationError(f"payload is not an in-toto Statement v1: {exc}", code="not_a_statement") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a duplicated key: a signed document has none.
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {key!r}")
        doc[key] = value
    return doc


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not: DSSE allows each."""
    if not isinstance(value, str):
        raise _malformed(f"{what} must be a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not valid base64") from None


def _malformed(detail: str) -> VerificationError:
    return VerificationError(f"malformed envelope: {detail}", code="malformed_envelope")
