"""Local stand-ins for the Sigstore services MC cannot reach from here: Fulcio, Rekor, an OIDC provider.

They run as a real HTTP server on 127.0.0.1 and hold keys of their own: a certificate authority
(Fulcio), a Certificate Transparency log key (the SCT embedded in each certificate), a Rekor log
key (signed entry timestamps and checkpoints) and an OIDC issuer key (identity tokens). They
publish those in a trusted root and a client trust config, so sigstore-python's own signing and
verification code runs unchanged against them: only what lies outside the machine is replaced.

What they check, as the real services do: Fulcio verifies the identity token's signature,
audience and lifetime and the CSR's proof of possession, and certifies the token's e-mail;
Rekor verifies the DSSE signature with the certificate's key before logging it, and keeps a real
RFC 6962 Merkle tree (inclusion proofs, signed checkpoints).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ISSUER = "https://oidc.mc-test.invalid"
AUDIENCE = "sigstore"
CERT_LIFETIME = timedelta(minutes=10)
_SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_VALID_SINCE = "2020-01-01T00:00:00Z"


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _log_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeSigstore:
    """Fulcio, Rekor and an OIDC issuer on one local HTTP server; ``with`` starts and stops it."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.oidc_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = self._make_ca()
        self.leaves: list[bytes] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> FakeSigstore:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/api/v2/signingCert":
                    status, answer = fake.fulcio_signing_cert(self.headers.get("Authorization", ""), body)
                elif self.path == "/api/v1/log/entries":
                    status, answer = fake.rekor_create_entry(body)
                else:
                    status, answer = 404, {"code": 404, "message": f"no {self.path}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the OIDC provider ----------------------------------------------------------------------
    def identity_token(self, email: str, *, lifetime: int = 300, key: ec.EllipticCurvePrivateKey | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": email,
            "email": email,
            "email_verified": True,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        return jwt.encode(claims, key or self.oidc_key, algorithm="ES256")

    # --- Fulcio ---------------------------------------------------------------------------------
    def fulcio_signing_cert(self, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            claims = jwt.decode(
                authorization.removeprefix("Bearer "),
                self.oidc_key.public_key(),
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=ISSUER,
            )
        except jwt.PyJWTError as exc:
            return 401, {"code": 401, "message": f"invalid identity token: {exc}"}
        csr = x509.load_pem_x509_csr(base64.b64decode(json.loads(body)["certificateSigningRequest"]))
        if not csr.is_signature_valid:
            return 400, {"code": 400, "message": "the CSR is not signed by its key"}
        leaf = self._issue(csr.public_key(), claims["email"], claims["iss"])
        chain = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, self.ca_cert)]
        return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    def _make_ca(self) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mc-test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fake fulcio"),
            ]
        )
        now = datetime.now(tz=UTC)
        public_key = self.ca_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def _issue(self, public_key: ec.EllipticCurvePublicKey, email: str, issuer: str) -> x509.Certificate:
        """A Fulcio-profile certificate for ``email`` with an embedded SCT from the CT log key."""
        now = datetime.now(tz=UTC).replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + CERT_LIFETIME)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(_OIDC_ISSUER_V1, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(_OIDC_ISSUER_V2, _der_utf8(issuer)), critical=False)
        )
        # The SCT signs the certificate without the SCT extension (the "precertificate").
        precert_tbs = builder.sign(self.ca_key, hashes.SHA256()).tbs_certificate_bytes
        sct = self._sct(precert_tbs)
        return builder.add_extension(x509.UnrecognizedExtension(_SCT_OID, _der_octets(sct)), critical=False).sign(
            self.ca_key, hashes.SHA256()
        )

    def _sct(self, precert_tbs: bytes) -> bytes:
        """An RFC 6962 SignedCertificateTimestampList holding one SCT by the CT log key."""
        timestamp = int(time.time()) * 1000  # whole seconds: exact through a float round trip
        issuer_key_hash = _log_id(self.ca_key.public_key())
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)  # v1, certificate_timestamp, time, precert_entry
            + issuer_key_hash
            + len(precert_tbs).to_bytes(3, "big")
            + precert_tbs
            + struct.pack("!H", 0)  # no extensions
        )
        signature = _sign(self.ct_key, signed)
        sct = (
            struct.pack("!B", 0)
            + _log_id(self.ct_key.public_key())
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        return struct.pack("!HH", len(sct) + 2, len(sct)) + sct

    # --- Rekor ----------------------------------------------------------------------------------
    def rekor_create_entry(self, body: bytes) -> tuple[int, dict[str, Any]]:
        proposed = json.loads(body)
        if (proposed.get("kind"), proposed.get("apiVersion")) != ("dsse", "0.0.1"):
            return 400, {"code": 400, "message": "only dsse 0.0.1 entries"}
        content = proposed["spec"]["proposedContent"]
        envelope = json.loads(content["envelope"])
        verifier = content["verifiers"][0]
        certificate = x509.load_pem_x509_certificate(base64.b64decode(verifier))
        payload = base64.b64decode(envelope["payload"])
        signature = base64.b64decode(envelope["signatures"][0]["sig"])
        type_bytes = envelope["payloadType"].encode()
        pae = b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)
        try:
            certificate.public_key().verify(signature, pae, ec.ECDSA(hashes.SHA256()))
        except Exception:
            return 400, {"code": 400, "message": "the envelope's signature does not verify with the certificate"}
        entry_body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(content["envelope"].encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": _b64(signature), "verifier": verifier}],
                },
            }
        )
        with self._lock:
            self.leaves.append(entry_body)
            index, size = len(self.leaves) - 1, len(self.leaves)
            root = _tree_hash(self.leaves)
            proof = _inclusion_path(index, self.leaves)
        return 201, {uuid.uuid4().hex: self._log_entry(entry_body, index, size, root, proof)}

    def _log_entry(self, body: bytes, index: int, size: int, root: bytes, proof: list[bytes]) -> dict[str, Any]:
        log_id = _log_id(self.rekor_key.public_key()).hex()
        integrated_time = int(time.time())
        promise = rfc8785.dumps(
            {"body": _b64(body), "integratedTime": integrated_time, "logID": log_id, "logIndex": index}
        )
        return {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": log_id,
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": self._checkpoint(size, root),
                    "hashes": [h.hex() for h in proof],
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": size,
                },
                "signedEntryTimestamp": _b64(_sign(self.rekor_key, promise)),
            },
        }

    def _checkpoint(self, size: int, root: bytes) -> str:
        """A signed note: origin, size, root hash; then the signature line, keyed by the log id's first bytes."""
        name = "rekor.mc-test.invalid"
        note = f"{name} - 1\n{size}\n{_b64(root)}\n"
        signature = _log_id(self.rekor_key.public_key())[:4] + _sign(self.rekor_key, note.encode())
        return f"{note}\n\u2014 {name} {_b64(signature)}\n"

    # --- what clients are configured with -----------------------------------------------------------
    def trusted_root(self) -> dict[str, Any]:
        def log(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            public = key.public_key()
            return {
                "baseUrl": self.url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(public)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": _VALID_SINCE},
                },
                "logId": {"keyId": _b64(_log_id(public))},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "mc-test", "commonName": "fake fulcio"},
                    "uri": self.url,
                    "certChain": {
                        "certificates": [{"rawBytes": _b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}]
                    },
                    "validFor": {"start": _VALID_SINCE},
                }
            ],
            "ctlogs": [log(self.ct_key)],
            "timestampAuthorities": [],
        }

    def trust_config(self) -> dict[str, Any]:
        service = {"url": self.url, "majorApiVersion": 1, "validFor": {"start": _VALID_SINCE}, "operator": "mc-test"}
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service],
                "oidcUrls": [],
                "rekorTlogUrls": [service],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }


# --- RFC 6962 Merkle tree -----------------------------------------------------------------------------


def _leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below ``n``."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _tree_hash(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return _leaf_hash(leaves[0])
    k = _split(len(leaves))
    return _node_hash(_tree_hash(leaves[:k]), _tree_hash(leaves[k:]))


def _inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]), from the leaf's sibling up."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_inclusion_path(index, leaves[:k]), _tree_hash(leaves[k:])]
    return [*_inclusion_path(index - k, leaves[k:]), _tree_hash(leaves[:k])]


# --- DER helpers ----------------------------------------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data
