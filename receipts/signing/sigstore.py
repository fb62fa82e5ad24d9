"""Keyless signing with Sigstore (``MC_SIGNER=sigstore``) and offline verification of its bundles.

Signing: MC presents an OIDC identity token to Fulcio, which certifies a short-lived key for
that identity (the certificate carries a CT log timestamp); sigstore-python signs the statement
with that key as a DSSE envelope and logs it in Rekor. The result is a Sigstore bundle (the
certificate, the envelope, the Rekor entry with its inclusion proof and signed entry timestamp),
kept with the receipt beside the plain envelope.

Verification needs no network: the trusted root (Fulcio CA certificates, CT log and Rekor keys)
is read from a file, and the policy names the identity and OIDC issuer that must have signed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sigstore import dsse
from sigstore._internal.fulcio.client import ExpiredCertificate, FulcioClientError
from sigstore._internal.rekor import RekorClientError
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import ExpiredIdentity, IdentityToken, detect_credential
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from receipts.signing.dsse import PAYLOAD_TYPE, SignedStatement, statement_from_payload
from receipts.signing.errors import SignerUnavailable, VerificationError
from receipts.signing.keys import key_id
from receipts.signing.statement import Statement

# Errors of sigstore-python and of the services behind it (Fulcio, Rekor, the OIDC provider).
_SIGNING_ERRORS = (
    SigstoreError,
    ExpiredIdentity,
    ExpiredCertificate,
    FulcioClientError,
    RekorClientError,
    requests.RequestException,
)


class SigstoreSigner:
    """Signs keyless: an identity token, a Fulcio certificate, a Rekor entry per statement."""

    kind = "sigstore"

    def __init__(self, *, trust_config: ClientTrustConfig, identity_token: Callable[[], str]) -> None:
        self._trust_config = trust_config
        self._identity_token = identity_token

    @classmethod
    def from_files(cls, *, trust_config: Path | None, identity_token_file: Path | None) -> SigstoreSigner:
        """Sign with the services of ``trust_config`` (a ClientTrustConfig JSON file; None: the
        public-good instance) as the identity of the token in ``identity_token_file`` (read at
        every signature, so a refreshed token is picked up; None: ambient credentials of CI or
        cloud, as sigstore-python detects them)."""
        token_source = functools.partial(_read_token, identity_token_file) if identity_token_file else _ambient_token
        return cls(trust_config=_trust_config(trust_config), identity_token=token_source)

    def sign_payload(self, payload: bytes) -> SignedStatement:
        try:
            token = IdentityToken(self._identity_token())
            context = SigningContext.from_trust_config(self._trust_config)
            with context.signer(token, cache=True) as signer:
                bundle = signer.sign_dsse(dsse.Statement(payload))
        except _SIGNING_ERRORS as exc:
            raise SignerUnavailable(f"Sigstore signing failed: {_describe(exc)}") from exc
        document = json.loads(bundle.to_json())
        return SignedStatement(
            envelope=document["dsseEnvelope"],
            signer=self.kind,
            key_id=key_id(bundle.signing_certificate.public_key()),
            sigstore_bundle=document,
        )


@dataclass(frozen=True)
class SigstorePolicy:
    """Whose keyless signatures to accept (certificate identity and OIDC issuer), under which root."""

    identity: str
    issuer: str
    trusted_root: TrustedRoot

    @classmethod
    def from_files(
        cls, *, identity: str, issuer: str, trusted_root: Path | None, trust_config: Path | None = None
    ) -> SigstorePolicy:
        """The trusted root from ``trusted_root``, else from ``trust_config``, else the public-good
        instance's as cached by sigstore-python (no network)."""
        if not identity or not issuer:
            raise VerificationError(
                "a Sigstore policy needs the signer's identity and OIDC issuer"
                " (MC_SIGSTORE_IDENTITY, MC_SIGSTORE_ISSUER)",
                code="sigstore",
            )
        try:
            if trusted_root is not None:
                root = TrustedRoot.from_file(str(trusted_root))
            elif trust_config is not None:
                root = _trust_config(trust_config).trusted_root
            else:
                root = ClientTrustConfig.production(offline=True).trusted_root
        except (OSError, ValueError, SigstoreError) as exc:
            raise VerificationError(f"the Sigstore trusted root cannot be loaded: {exc}", code="sigstore") from None
        return cls(identity=identity, issuer=issuer, trusted_root=root)


def verify_bundle(bundle: Mapping[str, Any] | str | bytes, policy: SigstorePolicy) -> Statement:
    """Verify a Sigstore bundle offline and return the in-toto statement its envelope carries.

    Checks the certificate chain to the trusted root at the time Rekor logged the entry, the
    CT log timestamp, the identity and issuer, the Rekor inclusion proof, checkpoint and signed
    entry timestamp, and the DSSE signature. Raises ``VerificationError`` saying what failed.
    """
    raw = json.dumps(bundle) if isinstance(bundle, Mapping) else bundle
    try:
        parsed = Bundle.from_json(raw)
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"malformed Sigstore bundle: {exc}", code="malformed_bundle") from None
    try:
        verifier = Verifier(trusted_root=policy.trusted_root)
        payload_type, payload = verifier.verify_dsse(parsed, Identity(identity=policy.identity, issuer=policy.issuer))
    except SigstoreError as exc:
        raise VerificationError(f"Sigstore bundle does not verify: {_describe(exc)}", code="sigstore") from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(
            f"wrong payloadType {payload_type!r}: MC receipts are {PAYLOAD_TYPE!r}", code="wrong_payload_type"
        )
    return statement_from_payload(payload)


@functools.lru_cache(maxsize=8)
def _trust_config(path: Path | None) -> ClientTrustConfig:
    """A trust config file, or the public-good instance's (refreshed over TUF once per process)."""
    try:
        if path is None:
            return ClientTrustConfig.production()
        return ClientTrustConfig.from_json(Path(path).read_text())
    except (OSError, ValueError, SigstoreError) as exc:
        source = path or "of the public-good instance"
        raise SignerUnavailable(f"the Sigstore trust config {source} cannot be loaded: {exc}") from None


def _read_token(path: Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SignerUnavailable(f"MC_SIGSTORE_IDENTITY_TOKEN_FILE {path} cannot be read: {exc.strerror}") from None
    if not token:
        raise SignerUnavailable(f"MC_SIGSTORE_IDENTITY_TOKEN_FILE {path} is empty")
    return token


def _ambient_token() -> str:
    token = detect_credential()
    if not token:
        raise SignerUnavailable(
            "no OIDC identity token: set MC_SIGSTORE_IDENTITY_TOKEN_FILE, or run where ambient credentials exist"
        )
    return token


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    return f"{text} ({cause})" if cause is not None and str(cause) not in text else text
