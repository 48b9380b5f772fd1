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

Format of the plaintext inside the AES-GCM ciphertext: a canonical JSON packet as published
(first byte ``{``: stored uncompressed, as every record before compression was), or
``NUL``, the dictionary version byte, then raw deflate. A dictionary, once used, never
changes: a better one is the next version.
"""

from __future__ import annotations

import functools
import zlib
from importlib import resources

from gateway.core.errors import ClaimxError

_MARK = 0
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


def compress(payload: bytes) -> bytes:
    """The stored form of ``payload``: compressed when that is shorter, else as it is."""
    c = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, 9, zlib.Z_DEFAULT_STRATEGY,
                         dictionary(CURRENT))
    packed = bytes((_MARK, CURRENT)) + c.compress(payload) + c.flush()
    return packed if len(packed) < len(payload) else payload


def decompress(stored: bytes) -> bytes:
    """The payload as published, from either stored form."""
    if not stored or stored[0] != _MARK:
        return stored
    d = zlib.decompressobj(_WBITS, dictionary(stored[1]))
    return d.decompress(stored[2:]) + d.flush()
