"""Payloads at rest: each record encrypted with its own data key (AES-256-GCM, ``cryptography``).

The data key is wrapped by the gateway's master key and stored in front of the ciphertext
(:data:`KEY_WRAP_FORM`; records before that keep it in the ``data_keys`` table, still
read); erasing it (:func:`erase`) makes the payload unrecoverable while the record's
digest, leaf and proofs stay valid, which is how a record is erased without rewriting the
log. Keeping it beside the ciphertext instead of a table of its own saves a row, a key and
a copy of the digest per record (about 100 bytes: issue 14's storage budget).

The envelope's other fields are stored compactly too (:func:`stored_meta`): for the usual
envelope (our payload type, one signature by the key in ``key_id``) only the signature's
raw bytes. Both live in ``record_payloads``, beside the record's narrow row; the payload's
fields that the row already holds are left out of the sealed bytes and put back on read
(:func:`known_fields`, gateway.store.payload_codec).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlalchemy.orm import Session

from gateway.core.envelope import PAYLOAD_TYPE
from gateway.core.errors import ClaimxError, NotFoundError
from gateway.core.types import hex32
from gateway.store import payload_codec
from gateway.store.tables import DataKey, Record, RecordPayload, utcnow

SECRET_AAD = b"claimx webhook secret:"
"""Prefix of the associated data binding a sealed secret to its row (``+ endpoint id``)."""
DEV_MASTER_KEY = hashlib.sha256(b"claimx development master key - not for production").digest()
_NONCE = 12
_WRAPPED = _NONCE + 32 + 16  # 0010's wrapped key: nonce, AES-256 key, GCM tag
_ZERO_NONCE = bytes(_NONCE)
OLD_FORM, KEY_WRAP_FORM = b"\x00", b"\x01"
"""First byte of ``record_payloads.sealed``: a form 0010 wrote (its bytes follow), or
:meth:`Vault.seal`'s: the data key wrapped with AES key wrap (RFC 3394, 40 bytes), then
the AES-GCM ciphertext and tag. The data key encrypts exactly once (a fresh key each
seal), so its nonce is fixed at zero and not stored: 32 bytes a record fewer than a
GCM-wrapped key and a random nonce, with the same per-record key."""


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    wrapped_key: bytes

    @property
    def stored(self) -> bytes:
        """What ``record_payloads.sealed`` holds: the form byte, wrapped key, ciphertext."""
        return KEY_WRAP_FORM + self.wrapped_key + self.ciphertext


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ClaimxError("master key must be 32 bytes (64 hex digits)", code="bad_master_key")
        self._key = master_key
        self._master = AESGCM(master_key)

    def seal(self, payload: bytes, digest: bytes,
             known: Sequence[tuple[str, str]] = (), *, packed: bytes | None = None) -> Sealed:
        """Compress (gateway.store.payload_codec) without the ``known`` fields the row
        holds, then encrypt with a fresh data key; the digest is bound in as associated data
        (so neither the ciphertext nor its key opens under another record's row).
        ``packed``: ``payload_codec.compress(payload, known)`` done already elsewhere."""
        data_key = AESGCM.generate_key(256)
        if packed is None:
            packed = payload_codec.compress(payload, known)
        ct = AESGCM(data_key).encrypt(_ZERO_NONCE, packed, digest)
        return Sealed(ct, aes_key_wrap(self._key, data_key))

    def open(self, rec: Record, stored: bytes | None, wrapped: bytes | None = None) -> bytes:
        """Decrypt a record's payload (``stored``: its ``record_payloads.sealed``), or raise
        410-style NotFound when it was erased.

        ``wrapped`` is the key from the ``data_keys`` table of records stored before keys
        moved into the row; None for the others."""
        if stored is None:
            raise NotFoundError("record payload was erased; its digest and proofs remain",
                                code="erased", http_status=410)
        try:
            plain = self._decrypt(rec.digest, stored, wrapped)
        except (InvalidTag, InvalidUnwrap) as exc:
            raise ClaimxError("payload cannot be decrypted with this gateway's master key",
                              code="decrypt_failed", http_status=500) from exc
        cut = payload_codec.is_cut(plain)
        payload = payload_codec.decompress(plain, known_fields(rec) if cut else ())
        # every read is checked (~1 µs): the row's fields put back into a cut payload, and
        # bytes compressed by a verifying process (only their source's hash was checked)
        if hashlib.sha256(payload).digest() != rec.digest:
            raise ClaimxError("the record's row does not rebuild its payload (its columns were "
                              "changed)" if cut else "the stored payload does not hash to the "
                              "record's digest (it was stored corrupt)",
                              code="payload_mismatch", http_status=500)
        return payload

    def _decrypt(self, digest: bytes, stored: bytes, wrapped: bytes | None) -> bytes:
        form, body = stored[:1], stored[1:]
        if form == KEY_WRAP_FORM:
            data_key = aes_key_unwrap(self._key, body[:40])
            return AESGCM(data_key).decrypt(_ZERO_NONCE, body[40:], digest)
        if form != OLD_FORM:
            raise ClaimxError(f"unknown sealed payload form {form.hex()}", code="decrypt_failed",
                              http_status=500)
        if wrapped is None:
            wrapped, body = body[:_WRAPPED], body[_WRAPPED:]
        data_key = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], digest)
        return AESGCM(data_key).decrypt(body[:_NONCE], body[_NONCE:], digest)

    def seal_secret(self, secret: str, owner: str) -> bytes:
        """A shared secret the gateway must read back (webhook signing keys), encrypted
        under the master key itself and bound to its row by ``owner`` (an id)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._master.encrypt(nonce, secret.encode(), SECRET_AAD + owner.encode())

    def open_secret(self, sealed: bytes, owner: str) -> str:
        try:
            return self._master.decrypt(sealed[:_NONCE], sealed[_NONCE:],
                                        SECRET_AAD + owner.encode()).decode()
        except InvalidTag as exc:
            raise ClaimxError("secret cannot be decrypted with this gateway's master key",
                              code="decrypt_failed", http_status=500) from exc


def known_fields(rec: Record) -> list[tuple[str, str]]:
    """The packet fields a record's row holds, as they appear in its payload."""
    return packet_fields(rec.issued_at, hex32(rec.issuer), rec.kind, rec.source_sha256,
                         rec.subject)


def packet_fields(issued_at: str, issuer: str, kind: str, source_sha256: str | None,
                  subject: str) -> list[tuple[str, str]]:
    """(key, value) of the payload's fields the row holds, in canonical order: ``sha256``
    is the source's (the last ``sha256`` key of a canonical packet)."""
    fields = [("issued_at", issued_at), ("issuer", issuer), ("kind", kind)]
    if source_sha256 is not None:
        fields.append(("sha256", source_sha256))
    fields.append(("subject", subject))
    return fields


def stored_meta(meta: dict[str, Any], key_id: bytes) -> bytes:
    """``record_payloads.meta`` for an envelope's non-payload fields: the signature's raw
    bytes when the rest follows from the row, else the fields as JSON (first byte ``{``:
    a signature starting with that byte is kept as JSON too, so the forms never mix)."""
    sigs = meta.get("signatures")
    if (meta.keys() == {"payloadType", "signatures"} and meta["payloadType"] == PAYLOAD_TYPE
            and isinstance(sigs, list) and len(sigs) == 1 and isinstance(sigs[0], dict)
            and sigs[0].keys() == {"keyid", "sig"} and sigs[0]["keyid"] == hex32(key_id)
            and isinstance(sigs[0]["sig"], str)):
        raw = _raw_signature(sigs[0]["sig"])
        if raw is not None and raw[:1] != b"{":
            return raw
    return json.dumps(meta, separators=(",", ":")).encode()


def _raw_signature(text: str) -> bytes | None:
    """The bytes of a base64 signature, if encoding them again gives the same text."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if base64.b64encode(raw).decode() == text else None


def envelope_meta(meta: bytes, key_id: bytes) -> dict[str, Any]:
    """The envelope's non-payload fields, from either stored form."""
    if meta[:1] == b"{":
        return dict(json.loads(meta))
    return {"payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": hex32(key_id), "sig": base64.b64encode(meta).decode()}]}


def envelope_json(vault: Vault, s: Session, rec: Record) -> dict[str, Any]:
    """The record's full DSSE envelope as published."""
    row = s.get(RecordPayload, rec.id)
    if row is None:
        raise NotFoundError("record payload is missing", code="erased", http_status=410)
    key = s.get(DataKey, rec.digest) if row.sealed is not None else None
    payload = vault.open(rec, row.sealed, key.wrapped if key else None)
    return {**envelope_meta(row.meta, rec.key_id), "payload": base64.b64encode(payload).decode()}


def erase(s: Session, rec: Record) -> None:
    """Destroy the record's data key and ciphertext; the digest stays in the log."""
    key = s.get(DataKey, rec.digest)
    if key is not None:
        s.delete(key)
    row = s.get(RecordPayload, rec.id)
    if row is not None:
        row.sealed = None
    rec.erased_at = utcnow()
