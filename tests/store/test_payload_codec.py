"""Payloads are compressed at rest with a frozen dictionary; every stored form stays readable."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.core.errors import ClaimxError
from gateway.store import payload_codec
from gateway.store.tables import Record
from gateway.store.vault import DEV_MASTER_KEY, Vault

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
    payload, digest = b'{"kind":"hospital.invoice"}', hashlib.sha256(b"x").digest()
    data_key, master = AESGCM.generate_key(256), AESGCM(DEV_MASTER_KEY)
    ct = b"\0" * 12 + AESGCM(data_key).encrypt(b"\0" * 12, payload, digest)
    wrapped = b"\1" * 12 + master.encrypt(b"\1" * 12, data_key, digest)
    rec = Record(digest=digest, payload_ct=ct)
    assert Vault(DEV_MASTER_KEY).open(rec, wrapped) == payload


def test_sealed_payload_is_compressed_and_opens(public_packets: list[bytes]) -> None:
    vault, digest = Vault(DEV_MASTER_KEY), hashlib.sha256(b"y").digest()
    payload = public_packets[1]
    sealed = vault.seal(payload, digest)
    assert len(sealed.ciphertext) < len(payload)
    rec = Record(digest=digest, payload_ct=sealed.stored)
    assert vault.open(rec) == payload


def test_unknown_dictionary_version_is_a_clear_error() -> None:
    with pytest.raises(ClaimxError, match="dictionary v9 is missing"):
        payload_codec.decompress(b"\0\x09abc")
