"""Records store their data key and signature compactly, beside the row (record_payloads)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

from gateway.core.envelope import PAYLOAD_TYPE
from gateway.core.types import hex32
from gateway.store.vault import envelope_meta, stored_meta

KEY_ID = hashlib.sha256(b"key").digest()
SIG = base64.b64encode(os.urandom(64)).decode()


def meta(*sigs: dict[str, str], ptype: str = PAYLOAD_TYPE) -> dict[str, object]:
    return {"payloadType": ptype, "signatures": list(sigs)}


def test_usual_envelope_keeps_only_its_raw_signature_and_reads_back_whole() -> None:
    sig = base64.b64encode(b"\0" + os.urandom(63)).decode()
    usual = meta({"keyid": hex32(KEY_ID), "sig": sig})
    assert stored_meta(usual, KEY_ID) == base64.b64decode(sig)
    assert envelope_meta(stored_meta(usual, KEY_ID), KEY_ID) == usual


def test_unusual_envelopes_are_kept_as_json() -> None:
    other = hashlib.sha256(b"other").digest()
    brace = base64.b64encode(b"{" + os.urandom(63)).decode()  # raw bytes that look like JSON
    for m in (meta({"keyid": hex32(other), "sig": SIG}),  # signed by a key not in key_id
              meta({"keyid": hex32(KEY_ID), "sig": SIG}, {"keyid": hex32(other), "sig": SIG}),
              meta({"keyid": hex32(KEY_ID), "sig": SIG}, ptype="application/json"),
              meta({"keyid": hex32(KEY_ID), "sig": brace}),
              meta({"keyid": hex32(KEY_ID), "sig": _not_canonical(SIG)})):
        stored = stored_meta(m, KEY_ID)
        assert json.loads(stored) == m
        assert envelope_meta(stored, KEY_ID) == m


def _not_canonical(sig: str) -> str:
    """The same bytes in base64 that sets the padding bits (decoders accept it)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert sig.endswith("==")
    odd = sig[:-3] + alphabet[alphabet.index(sig[-3]) | 1] + "=="
    assert base64.b64decode(odd) == base64.b64decode(sig) and odd != sig
    return odd
