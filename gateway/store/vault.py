"""Payloads at rest: each record encrypted with its own data key (AES-256-GCM, ``cryptography``).

The data key is wrapped by the gateway's master key and kept in its own table; deleting
that row (:func:`erase`) makes the payload unrecoverable while the record's digest, leaf
and proofs stay valid, which is how a record is erased without rewriting the log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from gateway.core.errors import ClaimxError, NotFoundError
from gateway.store import payload_codec
from gateway.store.tables import DataKey, Record, utcnow

SECRET_AAD = b"claimx webhook secret:"
"""Prefix of the associated data binding a sealed secret to its row (``+ endpoint id``)."""
DEV_MASTER_KEY = hashlib.sha256(b"claimx development master key - not for production").digest()
_NONCE = 12


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    wrapped_key: bytes


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ClaimxError("master key must be 32 bytes (64 hex digits)", code="bad_master_key")
        self._master = AESGCM(master_key)

    def seal(self, payload: bytes, digest: bytes) -> Sealed:
        """Compress (gateway.store.payload_codec), then encrypt with a fresh data key; the
        digest is bound in as associated data."""
        data_key = AESGCM.generate_key(256)
        nonce = os.urandom(_NONCE)
        ct = nonce + AESGCM(data_key).encrypt(nonce, payload_codec.compress(payload), digest)
        wrap_nonce = os.urandom(_NONCE)
        wrapped = wrap_nonce + self._master.encrypt(wrap_nonce, data_key, digest)
        return Sealed(ct, wrapped)

    def open(self, rec: Record, wrapped: bytes | None) -> bytes:
        """Decrypt a record's payload, or raise 410-style NotFound when it was erased."""
        if rec.payload_ct is None or wrapped is None:
            raise NotFoundError("record payload was erased; its digest and proofs remain",
                                code="erased", http_status=410)
        try:
            data_key = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], rec.digest)
            ct = rec.payload_ct
            plain = AESGCM(data_key).decrypt(ct[:_NONCE], ct[_NONCE:], rec.digest)
        except InvalidTag as exc:
            raise ClaimxError("payload cannot be decrypted with this gateway's master key",
                              code="decrypt_failed", http_status=500) from exc
        return payload_codec.decompress(plain)

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


def envelope_json(vault: Vault, s: Session, rec: Record) -> dict[str, Any]:
    """The record's full DSSE envelope as published."""
    key = s.get(DataKey, rec.digest)
    payload = vault.open(rec, key.wrapped if key else None)
    return {**json.loads(rec.envelope_meta), "payload": base64.b64encode(payload).decode()}


def erase(s: Session, rec: Record) -> None:
    """Destroy the record's data key and ciphertext; the digest stays in the log."""
    key = s.get(DataKey, rec.digest)
    if key is not None:
        s.delete(key)
    rec.payload_ct = None
    rec.erased_at = utcnow()
