"""The signing core of receipts: keys, DSSE envelopes over in-toto statements, verification.

Everything here but ``runtime`` is plain Python (no Django settings needed), so a verifier can
use it offline. Typical use::

    statement = build_statement(
        subjects=[subject("workflow.json", snapshot_sha256)],
        predicate_type="https://maestro.example/receipt/v1",
        predicate={...},
    )
    signed = sign_statement(statement, runtime.get_signer())    # SignedStatement
    verify_envelope(signed.envelope, runtime.verification_keys())  # the statement, or VerificationError

Keyless signing (``MC_SIGNER=sigstore``) lives in ``receipts.signing.sigstore``, imported only
when used: sigstore-python takes half a second to import.
"""

from receipts.signing.dsse import (
    PAYLOAD_TYPE,
    KeySigner,
    SignedStatement,
    Signer,
    VerifiedEnvelope,
    is_sigstore_bundle,
    pae,
    sign_statement,
    verify_envelope,
    verify_envelope_detailed,
)
from receipts.signing.errors import KeyLoadError, KeyringError, SignerUnavailable, SigningError, VerificationError
from receipts.signing.keyring import KeyRecord, Keyring
from receipts.signing.keys import (
    ALGORITHM,
    PrivateKey,
    PublicKey,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    load_public_keys,
    private_key_pem,
    public_key_pem,
)
from receipts.signing.statement import (
    STATEMENT_TYPE,
    Statement,
    StatementError,
    Subject,
    build_statement,
    check_statement,
    subject,
)

__all__ = [
    "ALGORITHM",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "KeyLoadError",
    "KeyRecord",
    "KeySigner",
    "Keyring",
    "KeyringError",
    "PrivateKey",
    "PublicKey",
    "SignedStatement",
    "Signer",
    "SignerUnavailable",
    "SigningError",
    "Statement",
    "StatementError",
    "Subject",
    "VerificationError",
    "VerifiedEnvelope",
    "build_statement",
    "check_statement",
    "generate_private_key",
    "is_sigstore_bundle",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_public_keys",
    "pae",
    "private_key_pem",
    "public_key_pem",
    "sign_statement",
    "subject",
    "verify_envelope",
    "verify_envelope_detailed",
]
