"""DSSE envelopes (the in-toto / Sigstore signing envelope) around canonical claim packets.

The signature covers DSSE's pre-authentication encoding, PAE(type, payload), so a
signature can never be replayed under another payload type. The payload is the packet's
RFC 8785 bytes; the record digest is SHA-256 of exactly those bytes.

Written here rather than taken from ``securesystemslib.dsse``: that class brings its own
key and threshold model, while claimx keys come from the chain registry and the whole
format is the few lines below plus strict parsing of untrusted input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.core.canonical import canonical_bytes, canonical_parse
from gateway.core.errors import InputError
from gateway.core.jsondepth import json_depth
from gateway.core.keys import PublicKey, SigningKey
from gateway.core.packet import Packet
from gateway.core.types import Digest, KeyId, hex32

PAYLOAD_TYPE = "application/vnd.claimx.packet+json"
MAX_PAYLOAD_BYTES = 1 << 20
MAX_SIGNATURES = 4


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: KeyId
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A parsed, shape-checked envelope; signatures are checked by :meth:`verify_with`."""

    payload: bytes
    signatures: tuple[Signature, ...]
    payload_type: str = PAYLOAD_TYPE

    @classmethod
    def from_json(cls, raw: Any) -> Envelope:
        """Parse untrusted JSON (text, or an already decoded value) once; everything after
        takes an Envelope."""
        obj = _load_json(raw) if isinstance(raw, bytes | bytearray | str) else raw
        if not isinstance(obj, dict):
            raise InputError("envelope must be a JSON object", code="invalid_envelope")
        ptype = obj.get("payloadType")
        if ptype != PAYLOAD_TYPE:
            raise InputError(f"payloadType must be {PAYLOAD_TYPE!r}", code="wrong_payload_type",
                             loc=["payloadType"])
        payload = _b64(obj.get("payload"), "payload")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InputError(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes", code="too_large",
                             loc=["payload"])
        sigs = obj.get("signatures")
        if not isinstance(sigs, list) or not 1 <= len(sigs) <= MAX_SIGNATURES:
            raise InputError(f"signatures must be a list of 1 to {MAX_SIGNATURES}",
                             code="invalid_envelope", loc=["signatures"])
        return cls(payload, tuple(_signature(s, i) for i, s in enumerate(sigs)), ptype)

    def to_json(self) -> dict[str, Any]:
        return {**self.meta_json(), "payload": base64.b64encode(self.payload).decode()}

    def meta_json(self) -> dict[str, Any]:
        """The envelope without its payload (what is stored beside the encrypted payload)."""
        return {"payloadType": self.payload_type,
                "signatures": [{"keyid": hex32(s.keyid),
                                "sig": base64.b64encode(s.sig).decode()}
                               for s in self.signatures]}

    @property
    def digest(self) -> Digest:
        return Digest(hashlib.sha256(self.payload).digest())

    def packet(self) -> Packet:
        """Decode and validate the payload; it must already be RFC 8785 canonical.

        The usual packet is proven canonical by one orjson parse and re-dump
        (:func:`canonical_parse`); anything else takes the reference path below, which also
        names what is wrong."""
        fast = canonical_parse(self.payload, MAX_DEPTH)
        if fast is not None:
            return Packet.from_obj(fast, floats_checked=True)
        if json_depth(self.payload) > MAX_DEPTH:  # before the recursive parser (jsondepth)
            raise InputError(f"payload nests deeper than {MAX_DEPTH} levels", code="too_deep",
                             loc=["payload"])
        try:
            obj = json.loads(self.payload, parse_float=_no_float)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"payload is not JSON: {exc}", code="invalid_payload",
                             loc=["payload"]) from exc
        except ValueError as exc:  # an integer of thousands of digits
            raise InputError("payload holds a number too long to read", code="invalid_payload",
                             loc=["payload"]) from exc
        if canonical_bytes(obj) != self.payload:
            raise InputError("payload is not in RFC 8785 canonical form (sign the canonical "
                             "bytes, e.g. with `claimx sign`)", code="not_canonical",
                             loc=["payload"])
        return Packet.from_obj(obj, floats_checked=True)

    def verify_with(self, key: PublicKey) -> None:
        """Check the signature made by ``key`` (matched by key id); raise if absent or bad."""
        kid = key.key_id
        for s in self.signatures:
            if s.keyid == kid:
                key.verify(s.sig, pae(self.payload_type, self.payload))
                return
        raise InputError("no signature by the given key", code="no_signature_for_key")


MAX_DEPTH = 32
"""Packets are shallow documents; deeper payloads are refused before canonicalising them."""


def _no_float(text: str) -> float:
    raise InputError("payload holds a JSON float; packets write decimals as strings",
                     code="float_in_packet", loc=["payload"])


def sign_packet(packet: Packet, key: SigningKey) -> Envelope:
    """Canonicalise ``packet`` and sign it as a one-signature envelope."""
    payload = canonical_bytes(packet.to_obj())
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return Envelope(payload, (Signature(key.key_id, sig),))


def _load_json(raw: bytes | bytearray | str) -> Any:
    if json_depth(bytes(raw) if isinstance(raw, bytearray) else raw) > MAX_DEPTH:
        raise InputError(f"envelope nests deeper than {MAX_DEPTH} levels", code="too_deep")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"envelope is not valid JSON: {exc}", code="malformed_json") from exc


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InputError(f"{field} must be a non-empty base64 string", code="bad_base64",
                         loc=[field])
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        # what b64decode(validate=True) means, without its regex pass over the text
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field} is not valid base64", code="bad_base64", loc=[field]) from exc


def _signature(obj: Any, i: int) -> Signature:
    if not isinstance(obj, dict):
        raise InputError("signature must be an object", code="invalid_envelope",
                         loc=["signatures", i])
    kid = obj.get("keyid")
    if not isinstance(kid, str):
        raise InputError("keyid must be a string", code="invalid_envelope",
                         loc=["signatures", i, "keyid"])
    raw = kid[2:] if kid.startswith("0x") else kid
    try:
        keyid = bytes.fromhex(raw)
    except ValueError:
        keyid = b""
    if len(keyid) != 32:
        raise InputError("keyid must be 32 bytes of hex", code="invalid_envelope",
                         loc=["signatures", i, "keyid"])
    sig = _b64(obj.get("sig"), "sig")
    if len(sig) > 160:
        raise InputError("signature too long", code="invalid_envelope", loc=["signatures", i])
    return Signature(KeyId(keyid), sig)
