"""DSSE envelopes over in-toto statements: round trip, and every way a receipt can be tampered with.

Plain Python: no database, no Django settings.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from receipts.signing import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    KeySigner,
    SignedStatement,
    StatementError,
    VerificationError,
    build_statement,
    generate_private_key,
    key_id,
    pae,
    sign_statement,
    subject,
    verify_envelope,
    verify_envelope_detailed,
)
from workflows.manifest import canonical_json

SNAPSHOT = "3" * 64
OUTPUT = "sha256:" + "a" * 64


def make_statement(**predicate: Any) -> dict[str, Any]:
    return dict(
        build_statement(
            subjects=[subject("workflow.json", SNAPSHOT), subject("outputs/report.csv", OUTPUT)],
            predicate_type="https://maestro.example/receipt/execution/v1",
            predicate={"execution": "e-1", "steps": [{"id": "fetch", "status": "succeeded"}], **predicate},
        )
    )


@pytest.fixture(scope="module")
def signer() -> KeySigner:
    return KeySigner(generate_private_key())


@pytest.fixture(scope="module")
def other_signer() -> KeySigner:
    return KeySigner(generate_private_key())


@pytest.fixture
def signed(signer: KeySigner) -> SignedStatement:
    return sign_statement(make_statement(), signer)


def envelope_payload(envelope: dict[str, Any]) -> bytes:
    return base64.b64decode(envelope["payload"])


def with_payload(envelope: dict[str, Any], payload: bytes) -> dict[str, Any]:
    return {**envelope, "payload": base64.b64encode(payload).decode()}


def failure(envelope: Any, keys: list[Any]) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, keys)
    return caught.value


# --- round trip ------------------------------------------------------------------------


def test_round_trip_returns_the_signed_statement(signed: SignedStatement, signer: KeySigner) -> None:
    verified = verify_envelope_detailed(signed.envelope, [signer.public_key])

    assert verified.statement == make_statement()
    assert verified.key_id == signer.key_id == signed.key_id
    assert signed.signer == "key"
    assert signed.sigstore_bundle is None


def test_envelope_shape_payload_is_canonical_json(signed: SignedStatement, signer: KeySigner) -> None:
    envelope = signed.envelope

    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert envelope_payload(envelope) == canonical_json(make_statement())
    assert envelope["signatures"] == [{"keyid": signer.key_id, "sig": envelope["signatures"][0]["sig"]}]
    # JSON-serialisable as is: it goes into a JSONField and into files.
    assert json.loads(json.dumps(envelope)) == envelope


def test_statement_has_the_in_toto_v1_shape() -> None:
    statement = make_statement()

    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {"name": "workflow.json", "digest": {"sha256": SNAPSHOT}},
        {"name": "outputs/report.csv", "digest": {"sha256": "a" * 64}},
    ]
    assert statement["predicateType"] == "https://maestro.example/receipt/execution/v1"


def test_pae_matches_the_dsse_specification_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md#test-vectors
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t/é", "ü".encode()) == "DSSEv1 4 t/é 2 ü".encode()


def test_a_signature_covers_the_pae(signed: SignedStatement, signer: KeySigner) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = base64.b64decode(signed.envelope["signatures"][0]["sig"])
    signer.public_key.verify(signature, pae(PAYLOAD_TYPE, envelope_payload(signed.envelope)), ec.ECDSA(hashes.SHA256()))


def test_signatures_differ_but_payloads_do_not(signer: KeySigner) -> None:
    first, second = (sign_statement(make_statement(), signer).envelope for _ in range(2))

    assert first["payload"] == second["payload"]
    assert first["signatures"] != second["signatures"]  # ECDSA signatures are randomised


# --- tampering: each failure says what failed ------------------------------------------------


def test_one_flipped_byte_in_the_payload_is_a_bad_signature(signed: SignedStatement, signer: KeySigner) -> None:
    payload = bytearray(envelope_payload(signed.envelope))
    payload[payload.index(b"succeeded")] ^= 0x01  # "succeeded" -> "rucceeded"
    error = failure(with_payload(signed.envelope, bytes(payload)), [signer.public_key])

    assert error.code == "bad_signature"
    assert str(error).startswith(f"bad signature: signatures[0] (key id {signer.key_id}) does not match the payload")


def test_a_signature_swapped_in_from_another_receipt_is_a_bad_signature(
    signed: SignedStatement, signer: KeySigner
) -> None:
    other = sign_statement(make_statement(execution="e-2"), signer).envelope
    swapped = {**signed.envelope, "signatures": copy.deepcopy(other["signatures"])}
    error = failure(swapped, [signer.public_key])

    assert error.code == "bad_signature"
    assert "the signature belongs to another envelope" in str(error)


def test_a_wrong_key_is_named_as_unknown(signed: SignedStatement, signer: KeySigner, other_signer: KeySigner) -> None:
    error = failure(signed.envelope, [other_signer.public_key])

    assert error.code == "unknown_key"
    assert str(error) == (
        f"unknown key: signatures[0] is by key id {signer.key_id}, which is not among the given public keys"
        f" ({other_signer.key_id})"
    )


def test_a_key_id_rewritten_to_the_wrong_key_is_a_bad_signature(
    signed: SignedStatement, other_signer: KeySigner
) -> None:
    forged = {**signed.envelope, "signatures": [{**signed.envelope["signatures"][0], "keyid": other_signer.key_id}]}
    error = failure(forged, [other_signer.public_key])

    assert error.code == "bad_signature"
    assert f"key id {other_signer.key_id}" in str(error)


def test_a_changed_payload_type_is_refused(signed: SignedStatement, signer: KeySigner) -> None:
    error = failure({**signed.envelope, "payloadType": "application/json"}, [signer.public_key])

    assert error.code == "wrong_payload_type"
    assert str(error) == "wrong payloadType 'application/json': MC receipts are 'application/vnd.in-toto+json'"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: [e], "malformed envelope: expected a JSON object with payload, payloadType and signatures, got"),
        (lambda e: {k: v for k, v in e.items() if k != "payload"}, "malformed envelope: 'payload' is missing"),
        (lambda e: {k: v for k, v in e.items() if k != "signatures"}, "malformed envelope: 'signatures' is missing"),
        (lambda e: {**e, "payload": "not base64!"}, "malformed envelope: 'payload' is not valid base64"),
        (lambda e: {**e, "payload": 42}, "malformed envelope: 'payload' must be a base64 string"),
        (lambda e: {**e, "payloadType": None}, "malformed envelope: 'payloadType' must be a string"),
        (lambda e: {**e, "signatures": []}, "malformed envelope: 'signatures' must be a non-empty list"),
        (lambda e: {**e, "signatures": ["MEUC"]}, "malformed envelope: signatures[0] must be a JSON object"),
        (lambda e: {**e, "signatures": [{"keyid": "x"}]}, "malformed envelope: signatures[0].sig is missing"),
        (lambda e: {**e, "signatures": [{"sig": "%%%"}]}, "malformed envelope: signatures[0].sig is not valid base64"),
        (lambda e: {**e, "signatures": [{"sig": ""}]}, "malformed envelope: signatures[0].sig is empty"),
        (lambda e: {**e, "signatures": [{"sig": "AA==", "keyid": 7}]}, "malformed envelope: signatures[0].keyid must"),
    ],
)
def test_a_malformed_envelope_says_which_part(
    signed: SignedStatement, signer: KeySigner, change: Any, message: str
) -> None:
    error = failure(change(signed.envelope), [signer.public_key])

    assert error.code == "malformed_envelope"
    assert str(error).startswith(message)


def test_no_keys_at_all(signed: SignedStatement) -> None:
    error = failure(signed.envelope, [])

    assert (error.code, str(error)) == ("no_keys", "no public keys to verify with")


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"not json", "payload_not_json", "payload is not JSON: Expecting value"),
        (b"\xff\xfe", "payload_not_json", "payload is not JSON: 'utf-8' codec can't decode"),
        (b'{"_type": 1, "_type": 2}', "payload_not_json", "payload is not JSON: duplicate key '_type'"),
        (b'{"x": NaN}', "payload_not_json", "payload is not JSON: NaN is not JSON"),
        (b"[]", "not_a_statement", "payload is not an in-toto Statement v1: expected a JSON object, got array"),
        (
            b'{"_type": "https://in-toto.io/Statement/v0.1"}',
            "not_a_statement",
            "payload is not an in-toto Statement v1: _type is 'https://in-toto.io/Statement/v0.1'",
        ),
        (
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "p"}',
            "not_a_statement",
            "payload is not an in-toto Statement v1: subject must be a non-empty list",
        ),
        (
            b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {"sha256": "AB"}}],'
            b' "predicateType": "p"}',
            "not_a_statement",
            "payload is not an in-toto Statement v1: subject[0].digest.sha256 must be 64 lowercase hex digits",
        ),
    ],
)
def test_a_signed_payload_that_is_not_a_statement(signer: KeySigner, payload: bytes, code: str, message: str) -> None:
    # Signed correctly, so only the content check can catch it.
    envelope = signer.sign_payload(payload).envelope
    error = failure(envelope, [signer.public_key])

    assert error.code == code
    assert str(error).startswith(message)


# --- what DSSE allows, and several keys --------------------------------------------------------


def test_a_signature_without_key_id_is_tried_with_every_key(
    signed: SignedStatement, signer: KeySigner, other_signer: KeySigner
) -> None:
    anonymous = {**signed.envelope, "signatures": [{"sig": signed.envelope["signatures"][0]["sig"]}]}

    verified = verify_envelope_detailed(anonymous, [other_signer.public_key, signer.public_key])

    assert verified.key_id == signer.key_id


def test_url_safe_unpadded_base64_is_accepted(signed: SignedStatement, signer: KeySigner) -> None:
    def url_safe(text: str) -> str:
        return base64.urlsafe_b64encode(base64.b64decode(text)).decode().rstrip("=")

    envelope = {
        **signed.envelope,
        "payload": url_safe(signed.envelope["payload"]),
        "signatures": [{**signed.envelope["signatures"][0], "sig": url_safe(signed.envelope["signatures"][0]["sig"])}],
    }

    assert verify_envelope(envelope, [signer.public_key]) == make_statement()


def test_one_good_signature_among_unknown_ones_verifies(
    signed: SignedStatement, signer: KeySigner, other_signer: KeySigner
) -> None:
    by_other = other_signer.sign_payload(envelope_payload(signed.envelope)).envelope["signatures"]
    envelope = {**signed.envelope, "signatures": by_other + signed.envelope["signatures"]}

    assert verify_envelope_detailed(envelope, [signer.public_key]).key_id == signer.key_id


def test_verify_does_not_change_its_input(signed: SignedStatement, signer: KeySigner) -> None:
    before = copy.deepcopy(signed.envelope)
    verify_envelope(signed.envelope, [signer.public_key])

    assert signed.envelope == before


# --- the statement builder ----------------------------------------------------------------------


@pytest.mark.parametrize("digest", ["abc", "A" * 64, "sha512:" + "a" * 64, "a" * 63])
def test_subject_needs_a_sha256_hex_digest(digest: str) -> None:
    with pytest.raises(StatementError, match="sha256 must be 64 lowercase hex digits"):
        subject("x", digest)


def test_build_statement_needs_a_subject() -> None:
    with pytest.raises(StatementError, match="subject must be a non-empty list"):
        build_statement(subjects=[], predicate_type="https://maestro.example/p", predicate={})


def test_sign_statement_refuses_what_is_not_a_statement(signer: KeySigner) -> None:
    with pytest.raises(StatementError, match="_type is None"):
        sign_statement({"subject": [], "predicate": {}}, signer)


def test_key_id_is_sha256_of_the_der_public_key(signer: KeySigner) -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = signer.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(signer.public_key) == hashlib.sha256(der).hexdigest()
    assert len(signer.key_id) == 64 and signer.key_id == signer.key_id.lower()


# --- an independent DSSE implementation agrees (securesystemslib) -------------------------------


def test_securesystemslib_verifies_an_envelope_mc_signed(signed: SignedStatement, signer: KeySigner) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    envelope = Envelope.from_dict(copy.deepcopy(signed.envelope))
    key = SSlibKey.from_crypto(signer.public_key, keyid=signer.key_id)

    assert envelope.verify([key], threshold=1) == {signer.key_id: key}
    assert envelope.payload == canonical_json(make_statement())


def test_mc_verifies_an_envelope_securesystemslib_signed(signer: KeySigner) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    private_key = generate_private_key()
    public_key = private_key.public_key()
    sslib_signer = CryptoSigner(private_key, SSlibKey.from_crypto(public_key, keyid=key_id(public_key)))
    envelope = Envelope(canonical_json(make_statement()), PAYLOAD_TYPE, {})
    envelope.sign(sslib_signer)

    assert verify_envelope(envelope.to_dict(), [private_key.public_key()]) == make_statement()
