"""Payloads are compressed at rest with a frozen dictionary; every stored form stays readable."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.core.errors import ClaimxError
from gateway.store import payload_codec
from gateway.store.tables import Record
from gateway.store.vault import DEV_MASTER_KEY, OLD_FORM, Vault, known_fields

ROOT = Path(__file__).resolve().parents[2]
V1_SHA256 = "1fa6d866e4987f823e829d1bc642bb414ff7d760b398f68baf34bb515567c165"


@pytest.fixture(scope="module")
def public_packets() -> list[bytes]:
    """What the adapters make of the public examples (OCR included, so made once)."""
    spec = importlib.util.spec_from_file_location("make_payload_dict",
                                                  ROOT / "scripts" / "make_payload_dict.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_payload_dict", module)
    spec.loader.exec_module(module)
    packets: list[bytes] = module.corpus()
    assert len(packets) > 50, "the public examples in tests/assets make the corpus"
    return packets


def test_dictionary_v1_is_frozen() -> None:
    """Records compressed with v1 can be read only with exactly these bytes."""
    assert hashlib.sha256(payload_codec.dictionary(1)).hexdigest() == V1_SHA256


def test_held_out_packets_shrink_to_under_half_and_round_trip(public_packets: list[bytes]) -> None:
    held_out = public_packets[1::2]  # the dictionary was made from the other half
    stored = [payload_codec.compress(p) for p in held_out]
    assert [payload_codec.decompress(s) for s in stored] == held_out
    ratio = sum(map(len, stored)) / sum(map(len, held_out))
    assert ratio < 0.5, f"compressed to {ratio:.2f} of the size"


def test_incompressible_payload_is_stored_as_it_is() -> None:
    noise = b"{" + os.urandom(400)
    assert payload_codec.compress(noise) == noise
    assert payload_codec.decompress(noise) == noise


def test_records_sealed_before_compression_still_open() -> None:
    """Rows written by earlier versions hold the packet encrypted as it was published."""
    payload = b'{"kind":"hospital.invoice"}'
    digest = hashlib.sha256(payload).digest()  # a record's digest: its payload's hash
    data_key, master = AESGCM.generate_key(256), AESGCM(DEV_MASTER_KEY)
    ct = b"\0" * 12 + AESGCM(data_key).encrypt(b"\0" * 12, payload, digest)
    wrapped = b"\1" * 12 + master.encrypt(b"\1" * 12, data_key, digest)
    rec = Record(digest=digest)
    assert Vault(DEV_MASTER_KEY).open(rec, OLD_FORM + ct, wrapped) == payload  # 0012 marks it


def _row_of(payload: bytes) -> Record:
    """A record row holding the packet's fields, as the publisher stores it."""
    obj = json.loads(payload)
    return Record(digest=hashlib.sha256(payload).digest(), issuer=bytes.fromhex(obj["issuer"][2:]),
                  kind=obj["kind"], subject=obj["subject"], issued_at=obj["issued_at"],
                  source_sha256=obj.get("source", {}).get("sha256"))


def test_sealed_payload_is_compressed_without_the_rows_fields_and_opens(
        public_packets: list[bytes]) -> None:
    vault, saved = Vault(DEV_MASTER_KEY), []
    for payload in map(_fresh_ids, public_packets[1::2]):
        rec = _row_of(payload)
        whole = vault.seal(payload, rec.digest)
        sealed = vault.seal(payload, rec.digest, known_fields(rec))
        saved.append(len(whole.ciphertext) - len(sealed.ciphertext))
        assert vault.open(rec, sealed.stored) == payload
        assert vault.open(rec, whole.stored) == payload  # the form before the cut reads too
    assert sum(saved) / len(saved) > 60, saved  # two ids the dictionary cannot know


def _fresh_ids(payload: bytes) -> bytes:
    """The packet with an issuer and a subject the dictionary has not seen (the examples'
    own are in it), as a real member's would be; still canonical (same lengths)."""
    obj = json.loads(payload)
    return (payload.replace(obj["issuer"].encode(), b"0x" + os.urandom(32).hex().encode())
            .replace(obj["subject"].encode(), os.urandom(32).hex().encode()))


def test_fields_are_cut_only_when_they_go_back_exactly(public_packets: list[bytes]) -> None:
    payload = public_packets[1]
    rec = _row_of(payload)
    known = known_fields(rec)
    assert payload_codec.is_cut(payload_codec.compress(payload, known))
    wrong = [(k, "0x" + "ab" * 32 if k == "issuer" else v) for k, v in known]
    stored = payload_codec.compress(payload, wrong)  # a value the packet does not hold
    assert not payload_codec.is_cut(stored) and payload_codec.decompress(stored) == payload
    # a body key that looks like a cut field still round-trips (the cut is checked)
    tricky = payload.replace(b'"body":{', b'"body":{"subject":"",', 1)
    stored = payload_codec.compress(tricky, known)
    assert payload_codec.decompress(stored, known) == tricky


def test_a_changed_column_does_not_pass_for_the_payload(public_packets: list[bytes]) -> None:
    vault, payload = Vault(DEV_MASTER_KEY), public_packets[1]
    rec = _row_of(payload)
    sealed = vault.seal(payload, rec.digest, known_fields(rec))
    rec.subject = "cd" * 32
    with pytest.raises(ClaimxError) as err:
        vault.open(rec, sealed.stored)
    assert err.value.code == "payload_mismatch"


def test_bytes_packed_elsewhere_that_are_not_the_payload_fail_on_read(
        public_packets: list[bytes]) -> None:
    """``Vault.seal(..., packed=)`` stores what a verifying process compressed, having
    checked only the hash of its source: if the packed bytes were another payload's (whole,
    not cut), reading the record says so instead of returning them."""
    vault, payload, other = Vault(DEV_MASTER_KEY), public_packets[1], public_packets[2]
    rec = _row_of(payload)
    sealed = vault.seal(payload, rec.digest, packed=payload_codec.compress(other))
    assert not payload_codec.is_cut(payload_codec.compress(other))
    with pytest.raises(ClaimxError, match="stored corrupt") as err:
        vault.open(rec, sealed.stored)
    assert err.value.code == "payload_mismatch"
    good = vault.seal(payload, rec.digest, packed=payload_codec.compress(payload))
    assert vault.open(rec, good.stored) == payload


def test_unknown_dictionary_version_is_a_clear_error() -> None:
    with pytest.raises(ClaimxError, match="dictionary v9 is missing"):
        payload_codec.decompress(b"\0\x09abc")
