"""Packets, canonical bytes, keys and DSSE envelopes: round trips and hostile input."""

from __future__ import annotations

import base64
import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.canonical import canonical_bytes, canonical_parse
from gateway.core.envelope import PAYLOAD_TYPE, Envelope, pae, sign_packet
from gateway.core.errors import InputError, VerificationError
from gateway.core.keys import SigningKey
from gateway.core.packet import Packet, new_packet
from gateway.core.types import KeyAlgorithm, hex32, member_id

ISSUER = hex32(member_id("hospital.test"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_bytes_equal_reference_jcs(value: object) -> None:
    """The fast path must never differ from the rfc8785 reference implementation."""
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(InputError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def _spellings(value: object) -> list[bytes]:
    """The reference canonical bytes of ``value`` and near misses a client might sign."""
    out = [json.dumps(value).encode(), json.dumps(value, separators=(",", ":")).encode(),
           json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
           json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")]
    try:
        out.append(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        pass
    return out


@settings(max_examples=400, deadline=None)
@given(json_values | st.dictionaries(st.text(alphabet=st.characters(min_codepoint=0x80),
                                                   max_size=3), st.integers(), max_size=4))
def test_canonical_parse_claims_only_what_the_reference_agrees_is_canonical(
        value: object) -> None:
    """The publish path's fast proof of canonical form (one orjson parse and re-dump plus a
    text scan) never accepts bytes that rfc8785 would write differently: floats, integers
    beyond 2**53, keys beyond the BMP (JCS sorts them by UTF-16 units), escapes, spacing."""
    for raw in _spellings(value):
        parsed = canonical_parse(raw, 32)
        if parsed is not None:
            assert rfc8785.dumps(parsed) == raw, raw


@pytest.mark.parametrize("raw", [
    b'{"a":1.0}', b'{"a":1e3}', b'{"a":9007199254740993}', b'{"a":-0}', b'{"b":1,"a":2}',
    b'{"a":1,"a":2}', b'{"a": 1}', '{"\U0001F600":1,"\uffff":2}'.encode(),
    '{"\uffff":2,"\U0001F600":1}'.encode(), rb'{"a":"\u00e9"}', rb'{"a":"\/"}',
    b'[' * 33 + b']' * 33, rb'{"a":"\ud800"}', b'\xef\xbb\xbf{}', b'{} ',
])
def test_canonical_parse_refuses_near_misses(raw: bytes) -> None:
    """Each of these is not RFC 8785 output (or not safely provable so): the fast path says
    so and the reference path decides."""
    assert canonical_parse(raw, 32) is None


def test_canonical_parse_accepts_reference_output() -> None:
    value = {"b": [1, "x\u2028\u00e9\u4e2d", None, True], "a": {"z": -5, "\u00e9": "\n\u0001"}}
    raw = rfc8785.dumps(value)
    assert canonical_parse(raw, 32) == value
    assert canonical_parse(b"[" * 32 + b"]" * 32, 32) is not None


def _packet(**kw: object) -> Packet:
    return new_packet(kind="hospital.invoice", issuer=ISSUER, subject="ab" * 32,
                      body={"total": "1280.50", "items": [{"name": "CT 胸部", "qty": 1}]},
                      **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", [KeyAlgorithm.ED25519, KeyAlgorithm.ECDSA_P256])
def test_sign_and_verify_round_trip(alg: KeyAlgorithm) -> None:
    key = SigningKey.generate(alg)
    env = sign_packet(_packet(), key)
    again = Envelope.from_json(json.dumps(env.to_json()))
    again.verify_with(key.public)
    assert again.packet().kind == "hospital.invoice"
    assert again.digest == env.digest == _digest(env)


def _digest(env: Envelope) -> bytes:
    import hashlib

    return hashlib.sha256(canonical_bytes(json.loads(env.payload))).digest()


def test_key_pem_round_trip_and_key_id_stable() -> None:
    key = SigningKey.generate(KeyAlgorithm.ECDSA_P256)
    again = SigningKey.from_pem(key.to_pem(b"pw"), b"pw")
    assert again.key_id == key.key_id and len(key.public.raw) == 33


def test_p256_raw_r_s_signatures_as_webcrypto_makes_them_verify() -> None:
    """JOSE/WebCrypto sign P-256 as 64 bytes r||s; claimx signs DER. Both verify; a tampered
    raw signature does not."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = SigningKey.generate(KeyAlgorithm.ECDSA_P256)
    env = sign_packet(_packet(), key)
    r, s = decode_dss_signature(env.signatures[0].sig)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sig_type = type(env.signatures[0])
    Envelope(env.payload, (sig_type(key.key_id, raw),)).verify_with(key.public)
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(VerificationError, match="does not verify"):
        Envelope(env.payload, (sig_type(key.key_id, bad),)).verify_with(key.public)


def test_forged_signature_rejected() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    env = sign_packet(_packet(), key)
    forged = Envelope(env.payload, env.signatures[:0] + (
        type(env.signatures[0])(key.key_id, other.sign(pae(PAYLOAD_TYPE, env.payload))),))
    with pytest.raises(VerificationError, match="does not verify"):
        forged.verify_with(key.public)


def test_tampered_payload_rejected() -> None:
    key = SigningKey.generate()
    env = sign_packet(_packet(), key)
    tampered = Envelope(env.payload.replace(b"1280.50", b"9280.50"), env.signatures)
    with pytest.raises(VerificationError):
        tampered.verify_with(key.public)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda o: "{not json", "malformed_json"),
        (lambda o: {**o, "payloadType": "application/json"}, "wrong_payload_type"),
        (lambda o: {**o, "payload": "!!!not base64"}, "bad_base64"),
        (lambda o: {**o, "signatures": []}, "invalid_envelope"),
        (lambda o: {**o, "signatures": [{"keyid": "0x12", "sig": "AA=="}]}, "invalid_envelope"),
        (lambda o: [o], "invalid_envelope"),
    ],
)
def test_malformed_envelopes_name_the_problem(mutate: object, code: str) -> None:
    env = sign_packet(_packet(), SigningKey.generate()).to_json()
    bad = mutate(env)  # type: ignore[operator]
    with pytest.raises(InputError) as err:
        Envelope.from_json(bad if isinstance(bad, str) else json.dumps(bad))
    assert err.value.code == code


def test_non_canonical_payload_rejected() -> None:
    key = SigningKey.generate()
    obj = _packet().to_obj()
    payload = json.dumps(obj, indent=2).encode()
    env = Envelope.from_json({"payloadType": PAYLOAD_TYPE,
                              "payload": base64.b64encode(payload).decode(),
                              "signatures": [{"keyid": "0x" + key.key_id.hex(), "sig": "AAAA"}]})
    with pytest.raises(InputError) as err:
        env.packet()
    assert err.value.code == "not_canonical"


def test_packet_rejects_floats_unknown_kinds_and_extra_fields() -> None:
    obj = _packet().to_obj()
    for bad, code in [({**obj, "body": {"total": 12.5}}, "float_in_packet"),
                      ({**obj, "kind": "hospital.unknown"}, "invalid_packet"),
                      ({**obj, "name": "张三"}, "invalid_packet"),
                      ({**obj, "subject": "110105194912310021"}, "invalid_packet")]:
        with pytest.raises(InputError) as err:
            Packet.from_obj(bad)
        assert err.value.code == code
        assert "张三" not in str(err.value) and "110105194912310021" not in str(err.value)


def test_salt_makes_equal_content_distinct() -> None:
    a, b = _packet(issued_at="2026-01-01T00:00:00Z"), _packet(issued_at="2026-01-01T00:00:00Z")
    assert a.body == b.body and a.digest() != b.digest()
