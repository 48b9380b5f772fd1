"""Turning one input into durable, signed records: adapt, sign, store in the outbox, once.

Every channel (MLLP, FHIR, watch folder) goes through :meth:`Intake.take`. An input already
accepted under the same idempotency key is answered from the outbox without adapting or signing
it again: a re-sent message would otherwise get a fresh salt, hence a new digest and a second
record on the log.
"""

from __future__ import annotations

import hashlib

from adapters import AdapterContext, adapt_bytes
from gateway.connect.outbox import Outbox, Record, Stored
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey


def source_key(channel: str, raw: bytes, *parts: str) -> str:
    """Idempotency key of an input: its channel, the sender's identifiers and its SHA-256."""
    return "|".join((channel, *parts, hashlib.sha256(raw).hexdigest()))


class Intake:
    """Adapts with the institution's context and signs with its key (which never leaves)."""

    def __init__(self, outbox: Outbox, key: SigningKey, issuer: str) -> None:
        self.outbox = outbox
        self.key = key
        self.issuer = issuer

    def take(self, raw: bytes, *, key: str, channel: str, fmt: str = "auto",
             file: str | None = None, subject: str | None = None) -> Stored:
        """Records of ``raw``, durably stored before this returns; AdapterError if unmappable."""
        before = self.outbox.lookup(key)
        if before is not None:
            return before
        ctx = AdapterContext(issuer=self.issuer, file=file, subject=subject)
        records = []
        for packet in adapt_bytes(raw, fmt, ctx):
            env = sign_packet(packet, self.key)
            records.append(Record(env.digest.hex(), packet.kind, env.to_json()))
        return self.outbox.add(key, channel, records)
