"""Records store their data key and signature compactly; rows of the older layout still read."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from gateway.core.envelope import PAYLOAD_TYPE
from gateway.core.types import hex32
from gateway.store.db import Database
from gateway.store.tables import DataKey, Record
from gateway.store.vault import (
    DEV_MASTER_KEY,
    Vault,
    envelope_json,
    envelope_meta,
    erase,
    stored_meta,
)

KEY_ID = hashlib.sha256(b"key").digest()
SIG = base64.b64encode(os.urandom(64)).decode()


def meta(*sigs: dict[str, str], ptype: str = PAYLOAD_TYPE) -> dict[str, object]:
    return {"payloadType": ptype, "signatures": list(sigs)}


def test_usual_envelope_keeps_only_its_signature_and_reads_back_whole() -> None:
    usual = meta({"keyid": hex32(KEY_ID), "sig": SIG})
    assert stored_meta(usual, KEY_ID) == SIG
    rec = Record(key_id=KEY_ID, envelope_meta=SIG)
    assert envelope_meta(rec) == usual


def test_unusual_envelopes_are_kept_as_json() -> None:
    other = hashlib.sha256(b"other").digest()
    for m in (meta({"keyid": hex32(other), "sig": SIG}),  # signed by a key not in key_id
              meta({"keyid": hex32(KEY_ID), "sig": SIG}, {"keyid": hex32(other), "sig": SIG}),
              meta({"keyid": hex32(KEY_ID), "sig": SIG}, ptype="application/json")):
        stored = stored_meta(m, KEY_ID)
        assert json.loads(stored) == m


def _row(digest: bytes, payload_ct: bytes, envelope_meta: str) -> Record:
    return Record(digest=digest, issuer=b"\1" * 32, key_id=KEY_ID, kind="hospital.invoice",
                  subject="ab" * 32, issued_at="2026-01-01T00:00:00Z",
                  envelope_meta=envelope_meta, payload_ct=payload_ct)


def test_old_and_new_layouts_read_and_erase(tmp_path: Path) -> None:
    db, vault = Database(f"sqlite:///{tmp_path / 'v.db'}"), Vault(DEV_MASTER_KEY)
    payload = b'{"kind":"hospital.invoice"}'
    old_d, new_d = hashlib.sha256(b"old").digest(), hashlib.sha256(b"new").digest()
    full = meta({"keyid": hex32(KEY_ID), "sig": SIG})
    # the layout before: key in data_keys, ciphertext of the raw payload, meta as JSON
    data_key = AESGCM.generate_key(256)
    ct = b"\0" * 12 + AESGCM(data_key).encrypt(b"\0" * 12, payload, old_d)
    wrapped = b"\1" * 12 + AESGCM(DEV_MASTER_KEY).encrypt(b"\1" * 12, data_key, old_d)
    sealed = vault.seal(payload, new_d)
    with db.session() as s:
        s.add(_row(old_d, ct, json.dumps(full)))
        s.add(DataKey(digest=old_d, wrapped=wrapped))
        s.add(_row(new_d, sealed.stored, stored_meta(full, KEY_ID)))
    expected = {**full, "payload": base64.b64encode(payload).decode()}
    with db.session() as s:
        for d in (old_d, new_d):
            rec = s.scalars(select(Record).where(Record.digest == d)).one()
            assert envelope_json(vault, s, rec) == expected
            erase(s, rec)
    with db.session() as s:
        assert s.get(DataKey, old_d) is None
        assert all(r.payload_ct is None for r in s.scalars(select(Record)))
