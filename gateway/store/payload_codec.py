"""Payloads compressed at rest, each record on its own, with a frozen preset dictionary.

Packets are about 1 KB and share most of their structure (field names, kinds, code
systems), which deflate cannot find inside one record; a preset dictionary of typical
packets (gateway/store/payload_dicts/, made by scripts/make_payload_dict.py from the public
examples) brings a record to about a third of its size while each stays independently
readable and erasable. zlib rather than zstd: the standard library has it, and with a
4 KB dictionary it costs about 20 µs per record and releases the GIL.

Compression happens before encryption; the sizes leak nothing new: only the database
holder sees them, and a record's plaintext comes from a single publisher, so no
attacker-chosen text is mixed with a secret (the condition for CRIME-style attacks).

Fields the record's row already holds (issuer, subject, kind, issued_at, the source's
hash: about 90 of the ~400 compressed bytes, hex being what deflate cannot shrink) are cut
out of the packet before compression, leaving ``"key":""``, and put back on read; the
cut is kept only when putting the values back gives the exact bytes, checked at write
time (and the digest checks the read: gateway.store.vault).

Format of the plaintext inside the AES-GCM ciphertext: a canonical JSON packet as published
(first byte ``{``: stored uncompressed, as every record before compression was), or
``NUL`` (``\x01``: with the known fields cut out), the dictionary version byte, then raw
deflate. A dictionary, once used, never changes: a better one is the next version.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from importlib import resources

from gateway.core.errors import ClaimxError

_MARK = 0
_CUT = 1
CURRENT = 1
"""The dictionary version new records use."""
_LEVEL = 6
_WBITS = -15  # raw deflate: the two-byte zlib header and checksum would only add size


@functools.cache
def dictionary(version: int) -> bytes:
    try:
        return (resources.files("gateway.store") / "payload_dicts" / f"v{version}.bin").read_bytes()
    except FileNotFoundError as exc:
        raise ClaimxError(f"payload dictionary v{version} is missing from this installation; "
                          "records compressed with it cannot be read", code="decrypt_failed",
                          http_status=500) from exc


Known = Sequence[tuple[str, str]]
"""(key, value) of string fields the row holds, in the packet's canonical key order."""


def compress(payload: bytes, known: Known = ()) -> bytes:
    """The stored form of ``payload``: compressed when that is shorter, else as it is;
    without the ``known`` fields when they can be put back exactly."""
    cut = _cut(payload, known) if known else None
    mark, body = (_MARK, payload) if cut is None else (_CUT, cut)
    c = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, 9, zlib.Z_DEFAULT_STRATEGY,
                         dictionary(CURRENT))
    packed = bytes((mark, CURRENT)) + c.compress(body) + c.flush()
    return packed if len(packed) < len(payload) else payload


def compress_all(items: Sequence[tuple[bytes, Known]]) -> list[tuple[bytes, bytes]]:
    """(SHA-256 of the payload, :func:`compress` of it) for each (payload, known): what a
    publish's verifying processes run for a chunk of a large batch (gateway.services.sigpool),
    so the gateway's own thread only encrypts. The hash lets the caller check that each
    answer belongs to the record it stores (the record digest is that hash)."""
    return [(hashlib.sha256(payload).digest(), compress(payload, known))
            for payload, known in items]


def decompress(stored: bytes, known: Known = ()) -> bytes:
    """The payload as published, from any stored form (``known``: the row's fields)."""
    if not stored or stored[0] not in (_MARK, _CUT):
        return stored
    d = zlib.decompressobj(_WBITS, dictionary(stored[1]))
    body = d.decompress(stored[2:]) + d.flush()
    return body if stored[0] == _MARK else _put_back(body, known)


def is_cut(stored: bytes) -> bool:
    """Whether ``stored`` lacks the known fields (so only the digest checks them)."""
    return stored[:1] == bytes((_CUT,))


def _cut(payload: bytes, known: Known) -> bytes | None:
    """``payload`` with each known value removed from its last ``"key":"value"``, or None
    when putting the values back would not give ``payload`` exactly."""
    out = payload
    for key, value in known:
        needle = b'"%s":"%s"' % (key.encode(), value.encode())
        at = out.rfind(needle)
        if at < 0:
            return None
        start = at + len(key) + 4
        out = out[:start] + out[start + len(value):]
    try:
        return out if _put_back(out, known) == payload else None
    except ClaimxError:
        return None


def _put_back(body: bytes, known: Known) -> bytes:
    out = body
    for key, value in reversed(known):
        needle = b'"%s":""' % key.encode()
        at = out.rfind(needle)
        if at < 0:
            raise ClaimxError(f"stored payload lacks its {key} field", code="decrypt_failed",
                              http_status=500)
        at += len(needle) - 1
        out = out[:at] + value.encode() + out[at:]
    return out
