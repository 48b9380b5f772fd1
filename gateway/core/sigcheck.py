"""Envelope signature checks in bulk, as run by the verifying worker processes.

A large batch is checked in other processes (gateway.services.sigpool) rather than on
threads: ``cryptography`` releases the GIL while it verifies, but each verification then has
to take the GIL back from the thread parsing the next envelopes, which holds it for a whole
switch interval, so threads reached barely one core of verification on two. A process has
its own GIL. This module is what those processes import: keys and DSSE's PAE only.
"""

from __future__ import annotations

from gateway.core.envelope import pae
from gateway.core.errors import ClaimxError
from gateway.core.keys import PublicKey

Item = tuple[int, bytes, bytes, str, bytes]
"""(key algorithm, registered public key, signature, payload type, payload)."""

_KEYS: dict[tuple[int, bytes], PublicKey] = {}


def failing(items: list[Item]) -> list[int]:
    """Indexes of the items whose signature does not verify (an unusable key counts)."""
    failed: list[int] = []
    for i, (algorithm, raw, sig, payload_type, payload) in enumerate(items):
        try:
            _key(algorithm, raw).verify(sig, pae(payload_type, payload))
        except ClaimxError:
            failed.append(i)
    return failed


def _key(algorithm: int, raw: bytes) -> PublicKey:
    """Parsed keys are reused: parsing a key costs about as much as a verification."""
    key = _KEYS.get((algorithm, raw))
    if key is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        key = _KEYS[(algorithm, raw)] = PublicKey.from_chain(algorithm, raw)
    return key
