"""Accepting signed envelopes: parse, check the signature against the chain's key, store once.

A batch is all-or-nothing: every envelope is checked first, and one bad envelope rejects
the batch with every failing index listed, so nothing is stored from a batch the caller
must fix. The same digest published again is idempotent: it returns the stored record and
never becomes a second leaf.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.db import Database
from gateway.envelope import Envelope
from gateway.errors import ClaimxError, InputError, VerificationError
from gateway.keys import PublicKey
from gateway.packet import Packet
from gateway.store import Record
from gateway.types import Digest, KeyAlgorithm, parse_hex32


class KeyStateLike(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def algorithm(self) -> KeyAlgorithm: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def valid(self) -> bool: ...


class KeyDirectory(Protocol):
    """What the publisher needs from the member registry (gateway.chain.Registry has it)."""

    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyStateLike: ...


@dataclass(frozen=True)
class Checked:
    envelope: Envelope
    packet: Packet
    digest: Digest
    key_id: bytes


@dataclass(frozen=True)
class Accepted:
    digest: Digest
    duplicate: bool
    urgent: bool
    kind: str


class KeyCache:
    """Reuses a key's registry answer for ``ttl`` seconds: one chain call per key, not per record.

    A revocation therefore takes effect at the gateway within ``ttl``; auditors' verification
    reads the registry directly and is not affected by this cache.
    """

    def __init__(self, directory: KeyDirectory, ttl: float, *,
                 chain_time: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory, self.ttl, self.clock = directory, ttl, clock
        self.chain_time = chain_time or (lambda: int(time.time()))
        """"Now" for validity: the chain's latest block time, the clock keys were stamped by."""
        self._entries: dict[tuple[bytes, bytes], tuple[float, KeyStateLike]] = {}

    def key_status(self, member_id: bytes, key_id: bytes) -> KeyStateLike:
        now = self.clock()
        hit = self._entries.get((member_id, key_id))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        state = self.directory.key_status_at(member_id, key_id, self.chain_time())
        self._entries[(member_id, key_id)] = (now, state)
        return state


class Publisher:
    def __init__(self, db: Database, keys: KeyCache,
                 on_urgent: Callable[[], None] | None = None) -> None:
        self.db, self.keys, self.on_urgent = db, keys, on_urgent
        self._public: dict[tuple[int, bytes], PublicKey] = {}

    def check(self, raw: bytes | str | dict[str, Any]) -> Checked:
        """Validate one envelope fully: shape, canonical packet, signature by a valid key."""
        env = Envelope.from_json(raw)
        packet = env.packet()
        issuer = parse_hex32(packet.issuer, "issuer")
        for sig in env.signatures:
            state = self.keys.key_status(issuer, sig.keyid)
            if not state.valid:
                continue
            key = self._public_key(state)
            if key.key_id != sig.keyid:
                raise VerificationError("registered key does not match its key id",
                                        code="key_id_mismatch")
            env.verify_with(key)
            return Checked(env, packet, env.digest, sig.keyid)
        status = self.keys.key_status(issuer, env.signatures[0].keyid).status
        raise VerificationError(
            f"no signature by a key the registry says is valid now for the issuer "
            f"(registry status: {status})", code="key_not_valid", key_status=status)

    def _public_key(self, state: KeyStateLike) -> PublicKey:
        """Parsed keys are reused: parsing and hashing a key costs as much as a verification."""
        cache_key = (int(state.algorithm), state.public_key)
        key = self._public.get(cache_key)
        if key is None:
            key = self._public[cache_key] = PublicKey.from_chain(state.algorithm, state.public_key)
        return key

    def publish(self, items: Sequence[bytes | str | dict[str, Any]]) -> list[Accepted]:
        """Check every envelope, then store the new ones in one transaction."""
        checked: list[Checked] = []
        errors: list[dict[str, Any]] = []
        for i, raw in enumerate(items):
            try:
                checked.append(self.check(raw))
            except ClaimxError as exc:
                errors.append({"index": i, **exc.to_dict()})
        if errors:
            if len(items) == 1:
                raise _single(errors[0])
            raise InputError(f"{len(errors)} of {len(items)} envelopes rejected; nothing stored",
                             code="batch_rejected", errors=errors)
        try:
            results = self._store(checked)
        except IntegrityError:  # a concurrent request stored one of the digests first
            results = self._store(checked)
        if self.on_urgent and any(r.urgent and not r.duplicate for r in results):
            self.on_urgent()
        return results

    def _store(self, checked: list[Checked]) -> list[Accepted]:
        with self.db.session() as s:
            digests = [c.digest for c in checked]
            existing = set(s.scalars(select(Record.digest).where(Record.digest.in_(digests))))
            rows, results = [], []
            for c in checked:
                duplicate = c.digest in existing
                results.append(Accepted(c.digest, duplicate, c.packet.is_urgent, c.packet.kind))
                if duplicate:
                    continue
                existing.add(c.digest)
                rows.append({
                    "digest": c.digest, "issuer": parse_hex32(c.packet.issuer), "key_id": c.key_id,
                    "kind": c.packet.kind, "subject": c.packet.subject,
                    "issued_at": c.packet.issued_at, "urgent": c.packet.is_urgent,
                    "envelope": json.dumps(c.envelope.to_json(), separators=(",", ":")),
                })
            if rows:
                s.execute(insert(Record), rows)
        return results


def _single(err: dict[str, Any]) -> ClaimxError:
    detail = {k: v for k, v in err.items() if k not in ("index", "code", "message")}
    cls = VerificationError if err["code"] in {"bad_signature", "key_not_valid",
                                               "key_id_mismatch"} else InputError
    return cls(err["message"], code=err["code"], **detail)
