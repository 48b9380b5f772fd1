"""Accepting signed envelopes: parse, check the signature against the chain's key, store once.

A batch is all-or-nothing: every envelope is checked first, and one bad envelope rejects
the batch with every failing index listed, so nothing is stored from a batch the caller
must fix. The same digest published again is idempotent: it returns the stored record and
never becomes a second leaf, unless the stored one was rejected at logging time (its key
was revoked before it was appended): then the new signature replaces it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.chain.models import KeyState
from gateway.core import sigcheck
from gateway.core.binding import parse_identity_body
from gateway.core.envelope import Envelope
from gateway.core.errors import (
    ChainUnavailableError,
    ClaimxError,
    ForbiddenError,
    InputError,
    VerificationError,
)
from gateway.core.keys import PublicKey
from gateway.core.packet import EXCHANGE_KINDS, IDENTITY_KINDS, Packet
from gateway.core.promise import Promise, PromiseBatch
from gateway.core.types import Digest, parse_hex32
from gateway.services import sigpool
from gateway.services.bindings import index_identity
from gateway.store.bulk import bulk_insert, insert_with_ids
from gateway.store.db import Database
from gateway.store.signers import signer_ids
from gateway.store.tables import (
    DataKey,
    Record,
    RecordPayload,
    hex32_to_db,
    kind_to_db,
    micros,
    utcnow,
)
from gateway.store.vault import Sealed, Vault, packet_fields, stored_meta

log = logging.getLogger("claimx.publish")

if TYPE_CHECKING:
    from gateway.services.promises import PromiseDesk


class KeyDirectory(Protocol):
    """What the publisher needs from the member registry (gateway.chain.client.Registry has it)."""

    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyState: ...


@dataclass(frozen=True)
class Checked:
    envelope: Envelope
    packet: Packet
    digest: Digest
    key_id: bytes
    key_fresh: bool = True
    """False when the key's status is the registry's last answer (the chain is down)."""


@dataclass(frozen=True)
class Accepted:
    digest: Digest
    duplicate: bool
    urgent: bool
    kind: str
    key_status: str = "fresh"
    """"stale" when the signing key was checked against the registry's last answer."""
    promise: Promise | None = None
    """The exchange's signed acceptance promise (gateway.core.promise), when it issues them."""


class KeyCache:
    """Reuses a key's registry answer for ``ttl`` seconds: one chain call per key, not per record.

    A revocation therefore takes effect at the gateway within ``ttl``; auditors' verification
    reads the registry directly and is not affected by this cache. While the chain does not
    answer, a key's last answer serves for ``grace`` seconds and is reported as stale; after
    that the publish is a 503 (``chain_unavailable``).
    """

    def __init__(self, directory: KeyDirectory, ttl: float, *,
                 chain_time: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic, grace: float = 300.0) -> None:
        self.directory, self.ttl, self.clock, self.grace = directory, ttl, clock, grace
        self.chain_time = chain_time or (lambda: int(time.time()))
        """"Now" for validity: the chain's latest block time, the clock keys were stamped by."""
        self._entries: dict[tuple[bytes, bytes], tuple[float, KeyState]] = {}

    def key_status(self, member_id: bytes, key_id: bytes) -> KeyState:
        return self.lookup(member_id, key_id)[0]

    def lookup(self, member_id: bytes, key_id: bytes) -> tuple[KeyState, bool]:
        """The key's state and whether it is fresh (False: the last answer, chain down)."""
        now = self.clock()
        hit = self._entries.get((member_id, key_id))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], True
        try:
            state = self.directory.key_status_at(member_id, key_id, self.chain_time())
        except ChainUnavailableError:
            if hit is not None and now - hit[0] <= self.grace:
                return hit[1], False
            raise
        self._entries[(member_id, key_id)] = (now, state)
        return state, True


PARALLEL_MIN = 64
"""Batches this large are checked on several threads; smaller ones are not worth the hand-off."""
SEQUENCE_WAKE = 256
"""A batch storing this many new records wakes the anchor worker (``on_urgent``) to sequence
them now rather than at its next poll."""
PROCESS_MIN = 256
"""Batches this large are checked by the verifying processes (gateway.services.sigpool)."""
CHUNK = 128
"""Envelopes per hand-off to a verifying process: verification starts after the first 128
are parsed, and the hand-off costs stay below 1% of the verifying."""


class Publisher:
    def __init__(self, db: Database, keys: KeyCache, vault: Vault,
                 on_urgent: Callable[[], None] | None = None,
                 on_stored: Callable[[Session, Stored], None] | None = None,
                 threads: int | None = None, promises: PromiseDesk | None = None,
                 processes: int | None = None, verify_timeout: float = 10.0) -> None:
        self.db, self.keys, self.vault, self.on_urgent = db, keys, vault, on_urgent
        self.promises = promises
        """Signs each acceptance's promise in the storing transaction (None: no promises)."""
        self.threads = threads or min(4, os.cpu_count() or 1)
        """Threads verifying the signatures of a large batch (see :meth:`_check_all`)."""
        self._pool: ThreadPoolExecutor | None = None
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        """Processes verifying the signatures of batches of PROCESS_MIN or more (< 2: none)."""
        self.verify_timeout = verify_timeout
        """Seconds a publish call waits, once parsed, for the processes' answers on all its
        chunks; past it they are killed and the call verifies its batch itself."""
        self.on_stored = on_stored
        """Called inside the storing transaction with the new digests (claim matching)."""
        self._public: dict[tuple[int, bytes], PublicKey] = {}
        self.accepted_total = 0
        """New records stored by this process (duplicates not counted): a metrics counter."""
        self.rejected_total = 0
        """Envelopes refused by this process (each failing envelope of a batch counts)."""

    def check(self, raw: bytes | str | dict[str, Any], publisher: bytes | None = None) -> Checked:
        """Validate one envelope fully: shape, canonical packet, signature by a valid key.

        ``publisher`` (the authenticated member) must be the packet's issuer.
        """
        checked, key = self._prepare(raw, publisher)
        checked.envelope.verify_with(key)
        return checked

    def _prepare(self, raw: bytes | str | dict[str, Any],
                 publisher: bytes | None) -> tuple[Checked, PublicKey]:
        """Everything :meth:`check` does but the signature check itself: the envelope and
        the key its signature must verify under."""
        env = Envelope.from_json(raw)
        packet = env.packet()
        issuer = parse_hex32(packet.issuer, "issuer")
        if publisher is not None and issuer != publisher:
            raise ForbiddenError("members publish only their own records: the packet's issuer "
                                 "is another member", code="issuer_mismatch")
        if packet.kind in EXCHANGE_KINDS:  # consents and reads are the exchange's own entries
            raise ForbiddenError(f"kind {packet.kind} is appended by the exchange itself, never "
                                 "published", code="reserved_kind")
        if packet.kind in IDENTITY_KINDS:
            parse_identity_body(packet)  # a 422 now, not a half-indexed binding later
        for sig in env.signatures:
            state, fresh = self.keys.lookup(issuer, sig.keyid)
            if not state.valid:
                continue
            key = self._public_key(state)
            if key.key_id != sig.keyid:
                raise VerificationError("registered key does not match its key id",
                                        code="key_id_mismatch")
            return Checked(env, packet, env.digest, sig.keyid, fresh), key
        status = self.keys.key_status(issuer, env.signatures[0].keyid).status
        raise VerificationError(
            f"no signature by a key the registry says is valid now for the issuer "
            f"(registry status: {status})", code="key_not_valid", key_status=status)

    def _public_key(self, state: KeyState) -> PublicKey:
        """Parsed keys are reused: parsing and hashing a key costs as much as a verification."""
        cache_key = (int(state.algorithm), state.public_key)
        key = self._public.get(cache_key)
        if key is None:
            key = self._public[cache_key] = PublicKey.from_chain(state.algorithm, state.public_key)
        return key

    def publish(self, items: Sequence[bytes | str | dict[str, Any]],
                publisher: bytes | None = None) -> list[Accepted]:
        """Check every envelope, then store the new ones in one transaction."""
        sealed: dict[bytes, Sealed] = {}
        checked, errors = self._check_all(items, publisher, sealed)
        if errors:
            self.rejected_total += len(errors)
            if len(items) == 1:
                raise errors[0][1]
            raise InputError(f"{len(errors)} of {len(items)} envelopes rejected; nothing stored",
                             code="batch_rejected",
                             errors=[{"index": i, **e.to_dict()} for i, e in errors])
        batch = self._promises(checked)
        try:
            results = self._store(checked, batch, sealed)
        except IntegrityError:  # a concurrent request stored one of the digests first
            results = self._store(checked, batch, sealed)
        new = sum(not r.duplicate for r in results)
        self.accepted_total += new
        if self.on_urgent and any(r.urgent and not r.duplicate for r in results):
            self.on_urgent()
        elif new >= SEQUENCE_WAKE and self.on_urgent:
            self.on_urgent()  # a large batch: the anchor worker sequences it as it comes
        return results

    def _check_all(self, items: Sequence[bytes | str | dict[str, Any]], publisher: bytes | None,
                   sealed: dict[bytes, Sealed] | None = None,
                   ) -> tuple[list[Checked], list[tuple[int, ClaimxError]]]:
        """Check every envelope; the ones that pass, in order, and the failures by index.
        When the processes verify, the payloads are sealed meanwhile into ``sealed``.

        Parsing runs on this thread. A large batch's signatures are verified by the
        verifying processes (gateway.services.sigpool), a chunk at a time as soon as it is
        parsed, so verification overlaps the parsing of the rest; otherwise on the thread
        pool (``cryptography`` releases the GIL) or, for a small batch, right here."""
        pending: list[tuple[int, Checked, PublicKey]] = []
        errors: list[tuple[int, ClaimxError]] = []
        pooled = self.processes >= 2 and len(items) >= PROCESS_MIN
        sealed = {} if sealed is None else sealed
        chunks: list[tuple[int, list[sigcheck.Item], sigpool.Known,
                           sigpool.Job[sigpool.Answer] | None]] = []
        chunk: list[sigcheck.Item] = []
        known: sigpool.Known = []
        for i, raw in enumerate(items):
            try:
                checked, key = self._prepare(raw, publisher)
            except ClaimxError as exc:
                errors.append((i, exc))
                continue
            pending.append((i, checked, key))
            if pooled:
                chunk.append(_item(checked, key))
                known.append(_known(checked.packet))
                if len(chunk) == CHUNK:
                    chunks.append((len(pending) - len(chunk), chunk, known,
                                   sigpool.submit(chunk, known, self.processes)))
                    chunk, known = [], []
        if chunk:
            chunks.append((len(pending) - len(chunk), chunk, known,
                           sigpool.submit(chunk, known, self.processes)))
        if pooled:
            failed = self._pooled(pending, chunks, sealed)
        elif len(pending) < PARALLEL_MIN or self.threads < 2:
            failed = _verify_slice(pending)
        else:
            failed = self._threaded_failures(pending)
        if failed:
            bad = {i for i, _ in failed}
            errors = sorted(errors + failed, key=lambda e: e[0])
            return [c for i, c, _ in pending if i not in bad], errors
        return [c for _, c, _ in pending], errors

    def _pooled(self, pending: list[tuple[int, Checked, PublicKey]],
                chunks: list[tuple[int, list[sigcheck.Item], sigpool.Known,
                                   sigpool.Job[sigpool.Answer] | None]],
                sealed: dict[bytes, Sealed]) -> list[tuple[int, ClaimxError]]:
        """Collect the processes' answers, all by one deadline (a hung process costs a call
        one timeout, not one per chunk), last chunk first (the ones not started yet are
        done on this thread meanwhile); seal the compressed payloads into ``sealed``. A
        failing envelope is checked again here for the exact error to report (failures are
        rare, and the answer is the same code's)."""
        deadline = time.monotonic() + self.verify_timeout
        suspects = []
        for start, items, known, job in reversed(chunks):
            failing, packed = sigpool.result(job, items, known, deadline)
            part = pending[start:start + len(items)]
            suspects += [part[k] for k in failing]
            self._seal_packed(part, packed, sealed)
        return _verify_slice(sorted(suspects, key=lambda p: p[0]))

    def _seal_packed(self, part: Sequence[tuple[int, Checked, PublicKey]],
                     packed: list[tuple[bytes, bytes]], sealed: dict[bytes, Sealed]) -> None:
        """Encrypt a chunk's compressed payloads into ``sealed``; an answer whose hash is not
        its record's digest (which would store another record's payload) is not used."""
        for (_, c, _), (digest, stored) in zip(part, packed, strict=True):
            if digest != c.digest:
                log.error("a compressed payload came back for the wrong record; compressing "
                          "it again here")
                sealed[c.digest] = self.vault.seal(c.envelope.payload, c.digest,
                                                   _known(c.packet))
            else:
                sealed[c.digest] = self.vault.seal(c.envelope.payload, c.digest, packed=stored)

    def _threaded_failures(self, pending: list[tuple[int, Checked, PublicKey]],
                           ) -> list[tuple[int, ClaimxError]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="claimx-verify")
        step = -(-len(pending) // self.threads)
        return [e for part in self._pool.map(
            _verify_slice, [pending[lo:lo + step] for lo in range(0, len(pending), step)])
            for e in part]

    def _promises(self, checked: list[Checked]) -> PromiseBatch | None:
        """The promises of this call: one signature over all (a promise batch), on this
        thread before the storing transaction, so signing holds no database lock; a
        duplicate's is discarded for the one already given."""
        if self.promises is None or not checked:
            return None
        return self.promises.batch_for(checked, self.promises.now())

    def _store(self, checked: list[Checked], batch: PromiseBatch | None,
               sealed: dict[bytes, Sealed]) -> list[Accepted]:
        with self.db.session() as s:
            results, new = store_checked(s, self.vault, checked, sealed)
            if new and self.on_stored is not None:
                self.on_stored(s, new)
            if self.promises is not None and batch is not None:
                results = self.promises.issue(s, batch, results)
        return results


def _item(checked: Checked, key: PublicKey) -> sigcheck.Item:
    """What a verifying process needs: the signature by ``key`` is the one verify_with
    checks (the first with its key id)."""
    env = checked.envelope
    sig = next(s.sig for s in env.signatures if s.keyid == checked.key_id)
    return (int(key.algorithm), key.raw, sig, env.payload_type, env.payload)


def _verify_slice(pending: Sequence[tuple[int, Checked, PublicKey]],
                  ) -> list[tuple[int, ClaimxError]]:
    """Verify each envelope's signature; the failures by index."""
    failed: list[tuple[int, ClaimxError]] = []
    for i, checked, key in pending:
        try:
            checked.envelope.verify_with(key)
        except ClaimxError as exc:
            failed.append((i, exc))
    return failed


def _revive(s: Session, vault: Vault, rec: Record, c: Checked) -> None:
    """A rejected digest is not a duplicate: the same packet signed again by a valid key
    takes the rejected row's place (same digest, same sealed payload, new signature and key),
    so it is sequenced at the next cycle and stays attached to the claims it matched."""
    rec.signer = signer_ids(s, [(parse_hex32(c.packet.issuer), c.key_id)]).popitem()[1]
    rec.accepted_at = utcnow()
    rec.rejected_at = rec.reject_code = None
    row = s.get(RecordPayload, rec.id)
    if row is None:
        row = RecordPayload(record_id=rec.id, sealed=None)
        s.add(row)
    row.meta = stored_meta(c.envelope.meta_json(), c.key_id)
    if row.sealed is None:  # erased while rejected: the new publish brings it back
        row.sealed = vault.seal(c.envelope.payload, c.digest, _known(c.packet)).stored
        rec.erased_at = None
        old_key = s.get(DataKey, c.digest)  # a key of the old layout must not outlive it
        if old_key is not None:
            s.delete(old_key)
    s.flush()
    s.expire(rec, ["issuer", "key_id"])  # read from the new signer


def _known(p: Packet) -> list[tuple[str, str]]:
    return packet_fields(p.issued_at, p.issuer, p.kind, p.source.sha256 if p.source else None,
                         p.subject)


Stored = list[tuple[bytes, str]]
"""(digest, subject) of newly inserted records."""

_RECORDS = cast(Table, Record.__table__)
_PAYLOADS = cast(Table, RecordPayload.__table__)
_RECORD_COLUMNS = ("digest", "signer", "kind", "subject", "issued_at", "urgent",
                   "source_sha256", "accepted_at")


def store_checked(s: Session, vault: Vault, checked: list[Checked],
                  sealed: dict[bytes, Sealed] | None = None) -> tuple[list[Accepted], Stored]:
    """Insert the new envelopes (payloads sealed, or taken sealed from ``sealed``) in the
    caller's transaction.

    Returns one result per envelope and (digest, subject) of the records actually inserted.
    """
    digests = [c.digest for c in checked]
    rejected = {r.digest: r for r in s.scalars(select(Record).where(
        Record.digest.in_(digests), Record.rejected_at.is_not(None)))}
    existing = set(s.scalars(select(Record.digest).where(Record.digest.in_(digests),
                                                         Record.rejected_at.is_(None))))
    rows: list[tuple[Any, ...]] = []
    payloads: list[tuple[bytes, bytes]] = []
    results: list[Accepted] = []
    stored: Stored = []
    identity: list[Checked] = []
    now = micros(utcnow())
    signers = signer_ids(s, {(parse_hex32(c.packet.issuer), c.key_id) for c in checked
                             if c.digest not in existing})
    for c in checked:
        p = c.packet
        duplicate = c.digest in existing
        results.append(Accepted(c.digest, duplicate, p.is_urgent, p.kind,
                                "fresh" if c.key_fresh else "stale"))
        if duplicate:
            continue
        existing.add(c.digest)
        if p.kind in IDENTITY_KINDS:
            identity.append(c)
        if c.digest in rejected:
            _revive(s, vault, rejected[c.digest], c)
            stored.append((c.digest, p.subject))
            continue
        seal = (sealed or {}).get(c.digest) or vault.seal(c.envelope.payload, c.digest,
                                                          _known(p))
        # values in their stored form: the DBAPI binds them as they are (gateway.store.bulk)
        rows.append((c.digest, signers[parse_hex32(p.issuer), c.key_id], kind_to_db(p.kind),
                     hex32_to_db(p.subject), p.issued_at, p.is_urgent,
                     hex32_to_db(p.source.sha256) if p.source else None, now))
        payloads.append((stored_meta(c.envelope.meta_json(), c.key_id), seal.stored))
        stored.append((c.digest, p.subject))
    ids = insert_with_ids(s, _RECORDS, _RECORD_COLUMNS, rows)
    bulk_insert(s, _PAYLOADS, ("record_id", "meta", "sealed"),
                [(i, *p) for i, p in zip(ids, payloads, strict=True)])
    for c in identity:
        index_identity(s, c.packet, c.digest, c.key_id)
    return results, stored
