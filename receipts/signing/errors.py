"""Errors of the signing core: each says what failed, and verification failures carry a ``code``."""

from __future__ import annotations


class SigningError(Exception):
    """Base of every error raised by ``receipts.signing``."""


class KeyLoadError(SigningError):
    """A key file cannot be used: missing, unreadable, not PKCS#8/SPKI PEM, wrong password, wrong curve."""


class KeyringError(SigningError):
    """The keyring directory is missing, unreadable or inconsistent, or an operation on it is refused."""


class SignerUnavailable(SigningError):
    """The configured signer cannot sign now (no key, no identity token, Fulcio or Rekor unreachable)."""


class VerificationError(SigningError):
    """An envelope or bundle did not verify. ``code`` is machine-readable; the message says what failed.

    Codes: ``malformed_envelope``, ``wrong_payload_type``, ``no_keys``, ``unknown_key``,
    ``bad_signature``, ``payload_not_json``, ``not_a_statement``; for Sigstore bundles
    ``malformed_bundle`` and ``sigstore``.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
