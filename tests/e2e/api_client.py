"""An outside client of the gateway, written from docs/api.md alone.

Nothing here comes from claimx, and this module must import nothing of it: the packets,
their RFC 8785 bytes (the independent ``rfc8785`` package), DSSE PAE, Ed25519 and ECDSA
P-256 signatures, key ids, the claimant's consent, RFC 9162 proof checking, webhook HMAC
checking and the documented error bodies are all this module's own code, following the
document (section numbers in the docstrings). test_external_client.py drives it against
a real gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PAYLOAD_TYPE = "application/vnd.claimx.packet+json"  # §5
SCHEMA = "claimx.packet/1"  # §3
Key = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def b64(data: bytes) -> str:
    """§1: standard alphabet, padded."""
    return base64.b64encode(data).decode()


def member_id(slug: str) -> str:
    """§2: 0x + SHA-256("claimx.member:" + slug)."""
    return "0x" + hashlib.sha256(b"claimx.member:" + slug.encode()).hexdigest()


def key_id(public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    """§2: 0x + SHA-256 of the SubjectPublicKeyInfo DER."""
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return "0x" + hashlib.sha256(der).hexdigest()


def canonical(value: Any) -> bytes:
    """§4: RFC 8785 bytes."""
    return bytes(rfc8785.dumps(value))


def digest_of(packet: dict[str, Any]) -> str:
    """§4: SHA-256 of the canonical bytes, 64 lower-case hex, no 0x."""
    return hashlib.sha256(canonical(packet)).hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    """§5: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes."""
    t = payload_type.encode()
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(body)).encode() \
        + b" " + body


def sign_pae(key: Key, message: bytes) -> bytes:
    """§5: Ed25519 over the PAE; ECDSA P-256 with SHA-256, DER-encoded."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def envelope(packet: dict[str, Any], key: Key) -> dict[str, Any]:
    payload = canonical(packet)
    sig = sign_pae(key, pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": b64(payload),
            "signatures": [{"keyid": key_id(key.public_key()), "sig": b64(sig)}]}


def verify_envelope(env: dict[str, Any],
                    public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> None:
    """Raise InvalidSignature unless ``public`` signed the envelope's PAE."""
    payload = base64.b64decode(env["payload"])
    message = pae(env["payloadType"], payload)
    mine = [s for s in env["signatures"] if s["keyid"] == key_id(public)]
    assert mine, "no signature by this key"
    sig = base64.b64decode(mine[0]["sig"])
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, message)
    else:
        public.verify(sig, message, ec.ECDSA(hashes.SHA256()))


def new_packet(kind: str, issuer: str, subject: str, body: dict[str, Any],
               issued_at: str, urgent: bool = False) -> dict[str, Any]:
    """§3: every required field, a fresh 16-byte base64url salt without padding."""
    salt = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    return {"schema": SCHEMA, "kind": kind, "issuer": issuer, "issued_at": issued_at,
            "subject": subject, "body": body, "salt": salt, "urgent": urgent}


def consent(scope: dict[str, Any], claimant: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    """§7: Ed25519 over the RFC 8785 bytes of the scope as sent, no PAE."""
    pub = claimant.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    return {"scope": scope, "claimant_signature": {
        "algorithm": "ed25519", "public_key": b64(pub),
        "sig": b64(claimant.sign(canonical(scope)))}}


def leaf_hash(digest: bytes) -> bytes:
    """§10."""
    return hashlib.sha256(b"\x00" + digest).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_ok(digest_hex: str, index: int, size: int, proof: list[str],
                 root_hex: str) -> bool:
    """§10: RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(bytes.fromhex(digest_hex))
    for p_hex in proof:
        p = bytes.fromhex(p_hex)
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == bytes.fromhex(root_hex)


def webhook_ok(secret: str, header: str, body: bytes, now: float,
               tolerance: int = 300) -> bool:
    """§11: t and v1 from the header; HMAC-SHA256(secret, t + "." + raw body), hex."""
    t: int | None = None
    v1: list[str] = []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            t = int(v)
        elif k == "v1":
            v1.append(v)
    if t is None or abs(now - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in v1)


def aware(text: str) -> datetime:
    """§1: timestamps the gateway emits carry an offset."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"timestamp without an offset: {text!r}"
    return value


@dataclass
class Gateway:
    url: str
    members: dict[str, Any]

    def token(self, slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.members[slug]['token']}"}

    def key(self, slug: str) -> Key:
        pem = Path(self.members[slug]["key_file"]).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
        return key


@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str = ""
    hooks: list[Hook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, done: Callable[[list[Hook]], bool], seconds: float = 15) -> list[Hook]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.hooks)
            if done(got):
                return got
            time.sleep(0.1)
        raise AssertionError(f"webhooks not received in time; got {len(got)}")


def ok(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


def refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """§12: {"error": {"code", "message", ...}} with the documented status."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert err["code"] == code and isinstance(err["message"], str) and err["message"], body
    return err
