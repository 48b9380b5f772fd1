"""Database tables: records, the Merkle log's nodes, local tree heads, chain anchors, leases.

SQLAlchemy 2 typed models with a naming convention; the schema is created and upgraded by
Alembic (``gateway/migrations``), never by ``create_all`` outside tests of the migrations.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from gateway.core.types import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware in UTC.

    SQLite keeps no offset: without this, a value written with ``+08:00`` would be stored as
    its wall-clock time and read back naive, so API timestamps would change format (and
    meaning) with the database. The DDL is ``DateTime(timezone=True)`` as before.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Hex32(TypeDecorator[str]):
    """64 lowercase hex digits (a subject pseudonym, a SHA-256) stored as their 32 bytes:
    half the row and index space of the text, read back as the same text."""

    impl = LargeBinary(32)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else hex32_to_db(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).hex()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def hex32_to_db(value: str) -> bytes:
    """What a :class:`Hex32` column stores (for statements that bypass the ORM's binding)."""
    if not _HEX64.fullmatch(value):
        raise ValueError(f"expected 64 lowercase hex digits, got {value!r}")
    return bytes.fromhex(value)


KIND_CODES: tuple[str, ...] = (
    "hospital.admission_summary", "hospital.discharge_summary", "hospital.invoice",
    "hospital.diagnosis", "hospital.lab_report", "hospital.procedure",
    "police.accident_determination", "police.incident_report", "civil.death_certificate",
    "attachment", "payer.adjudication", "payer.coverage", "identity.binding",
    "identity.binding_revoked", "insurer.consent", "exchange.access",
)
"""Evidence kinds as stored: a kind's code is its position here. Append only (a stored code
never changes meaning); every kind of gateway.core.packet.KINDS is here (tested)."""
_KIND_CODE = {k: i for i, k in enumerate(KIND_CODES)}


class KindCode(TypeDecorator[str]):
    """An evidence kind stored as a small integer (:data:`KIND_CODES`): one or two bytes
    instead of about 17, read back as the kind's name."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else kind_to_db(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> str | None:
        return None if value is None else KIND_CODES[value]


def kind_to_db(kind: str) -> int:
    """What a :class:`KindCode` column stores."""
    try:
        return _KIND_CODE[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} has no stored code: add it to KIND_CODES") from None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class UnixMicros(TypeDecorator[datetime]):
    """A UTC timestamp stored as integer microseconds since 1970: 8 bytes instead of
    SQLite's 26 characters of text, read back as the same timezone-aware datetime."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else EPOCH + value * _MICRO


def micros(value: datetime) -> int:
    """What a :class:`UnixMicros` column stores."""
    return (as_utc(value) - EPOCH) // _MICRO


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Signer(Base):
    """An (issuer, key id) pair records are signed under, stored once: a record refers to
    it by a small integer instead of carrying 64 bytes (gateway.store.signers)."""

    __tablename__ = "signers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (UniqueConstraint("issuer", "key_id", name="uq_signers_issuer_key_id"),)


class Record(Base):
    """One accepted, signature-checked envelope. ``leaf_index`` is set when sequenced.

    Narrow on purpose (about 120 bytes): the sealed payload and the signature live in
    :class:`RecordPayload`, so sequencing, which sets ``leaf_index``, rewrites little.
    Indexes are the ones queries use: digest (lookups, duplicates), subject (a new claim
    attaches the subject's records), leaf_index (proofs, listings, derived Merkle leaves)
    and the pending records (a partial index: only rows not yet sequenced)."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    signer: Mapped[int] = mapped_column(Integer)
    """The :class:`Signer` (issuer and signing key); ``issuer`` and ``key_id`` read it."""
    issuer: Mapped[bytes] = column_property(
        select(Signer.issuer).where(Signer.id == signer).correlate_except(Signer)
        .scalar_subquery())
    key_id: Mapped[bytes] = column_property(
        select(Signer.key_id).where(Signer.id == signer).correlate_except(Signer)
        .scalar_subquery())
    kind: Mapped[str] = mapped_column(KindCode())
    subject: Mapped[str] = mapped_column(Hex32(), index=True)
    issued_at: Mapped[str] = mapped_column(String(32))
    """As the packet has it (its exact text is rebuilt into the payload on read)."""
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    source_sha256: Mapped[str | None] = mapped_column(Hex32(), nullable=True)
    """Hash of the institutional source document, to recognise re-published material."""
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(UnixMicros(), default=utcnow)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    rejected_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Set when the anchor worker found the signing key no longer valid at logging time:
    the record is never appended (gateway.services.logcheck)."""
    reject_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Why: ``key_revoked``, ``member_suspended``, … (the registry's status)."""

    __table_args__ = (Index("ix_records_pending", "urgent",
                            sqlite_where=text("leaf_index IS NULL"),
                            postgresql_where=text("leaf_index IS NULL")),)


class RecordPayload(Base):
    """A record's envelope beyond its columns, written once at acceptance and read only to
    return the envelope (gateway.store.vault): kept out of ``records`` so that the wide
    bytes are never rewritten when the record is sequenced."""

    __tablename__ = "record_payloads"
    record_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    """``records.id`` (no foreign key: neither row is ever deleted, the check would cost a
    lookup per insert, and SQLite's table rebuilds in migrations would trip over it)."""
    meta: Mapped[bytes] = mapped_column(LargeBinary)
    """The envelope without its payload (gateway.store.vault.stored_meta): the raw
    signature for the usual envelope, else its JSON (first byte ``{``)."""
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The payload, compressed and encrypted with the record's own data key (wrapped key
    first, gateway.store.vault.Sealed); None once erased."""


NODE_LEVEL_SHIFT = 40
"""A node's key is ``level << 40 | index`` (a log of up to 2**40 leaves): one integer
primary key, which SQLite keeps as the rowid, so the table needs no separate index."""


class Node(Base):
    """A complete perfect subtree of the Merkle log (see gateway.core.merkle), of level
    ``gateway.store.log.STORED_LEVEL`` or above; lower ones are derived from the digests."""

    __tablename__ = "merkle_nodes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogState(Base):
    """Single row (id=1): the sequenced size. Locked while sequencing, so one writer appends."""

    __tablename__ = "log_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class Anchor(Base):
    """A tree head written to the chain's EvidenceLog."""

    __tablename__ = "anchors"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    head_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_time: Mapped[int] = mapped_column(BigInteger)
    gas_used: Mapped[int] = mapped_column(BigInteger, default=0)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    fence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The lease epoch (fencing token) of the worker that wrote this row; None before 0010."""
    confirmed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """The chain holds this head with ``CLAIMX_CONFIRMATIONS`` confirmations: only then are
    its records reported anchored and cited by receipts. False while it is too shallow, or
    after the chain lost it (until it is anchored again)."""


class Lease(Base):
    """Leader election through the database: one anchor worker holds the lease at a time."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The fencing token: raised each time a process takes the lease (a restart too), never
    by a renewal; every chain write and anchor row is checked against it."""


# --- the insurer's side (issue 4) -------------------------------------------------------


class Credential(Base):
    """An API credential of a member's system; only its SHA-256 is stored."""

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DataKey(Base):
    """A record's payload key, wrapped by the master key. Deleting the row erases the record."""

    __tablename__ = "data_keys"
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary(60))


class Claim(Base):
    """An insurer's claim, opened with the claimant's consent."""

    __tablename__ = "claims"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    insurer: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    reference: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(64), index=True)
    policy: Mapped[str] = mapped_column(String(128))
    incident_date: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Set when the insurer closes the claim: paid, denied or withdrawn."""
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Consent(Base):
    """What the claimant allowed the insurer to see; its digest is a leaf of the log."""

    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(36), index=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    insurer: Mapped[bytes] = mapped_column(LargeBinary(32))
    institutions: Mapped[str] = mapped_column(Text)
    """JSON list of 0x member ids; empty list = any institution."""
    kinds: Mapped[str] = mapped_column(Text)
    """JSON list of evidence kinds; empty list = any kind."""
    date_from: Mapped[str] = mapped_column(String(10))
    date_to: Mapped[str] = mapped_column(String(10))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """Digest of the consent record in the evidence log."""
    claimant_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """Raw Ed25519 key that signed the consent (None for consents older than bindings)."""
    binding_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """The identity.binding entry that tied ``claimant_key`` to the subject."""


class IdentityBinding(Base):
    """An attester's signed statement that a claimant key belongs to a subject: an
    ``identity.binding`` record of the evidence log, indexed here (gateway.services.bindings)."""

    __tablename__ = "identity_bindings"
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    """Digest of the binding's record in the evidence log."""
    subject: Mapped[str] = mapped_column(String(64), index=True)
    claimant_key: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    attester: Mapped[bytes] = mapped_column(LargeBinary(32))
    attester_key_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    attested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_by: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """Digest of the ``identity.binding_revoked`` record."""


class ClaimantWithdrawal(Base):
    """A claimant's withdrawal of every consent to one insurer (by subject, not by claim)."""

    __tablename__ = "claimant_withdrawals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    insurer: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    claimant_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """The bound key that signed it; None when the insurer recorded it."""
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """Digest of the withdrawal entry in the evidence log."""


class EvidenceRequest(Base):
    """An insurer asking an institution for kinds of evidence for a claim."""

    __tablename__ = "evidence_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(36), index=True)
    institution: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    kinds: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default="open")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decline_reason: Mapped[str] = mapped_column(String(500), default="")
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the clock sweep announced that the request ran past its due time (once)."""

    __table_args__ = (Index("ix_evidence_requests_clock", "status", "due_at"),)


class ClaimRecord(Base):
    """A record attached to a claim (matched by subject and consent scope)."""

    __tablename__ = "claim_records"
    claim_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Set when the same source document was already attached under another digest."""
    matched_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Event(Base):
    """Something a member should hear about: the claim timeline, webhooks and SSE read these."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    """The audience."""
    claim_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    type: Mapped[str] = mapped_column(String(48))
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AccessLog(Base):
    """Every payload read: who, which record, under which claim and consent."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    record_digest: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    claim_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    entry_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """Digest of this access entry as a leaf of the evidence log."""


class WebhookEndpoint(Base):
    """A member's HTTPS receiver. The secret signs every body; it is shown once at creation
    and kept so the gateway can sign (a shared key, not a password, so it cannot be hashed):
    ``secret_ct`` holds it encrypted under the master key (``Vault.seal_secret``)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Delivery(Base):
    """One event for one endpoint. ``last_error`` names the failure, never payload data."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class PushCursor(Base):
    """Single row (id=1): every event up to ``last_event_id`` has been fanned out."""

    __tablename__ = "push_cursor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)


# --- pages people look at (issue 15) ------------------------------------------------------


class ShareLink(Base):
    """A claimant's link to one claim's progress board; only the token's SHA-256 is stored.

    The token is a capability for that claim's progress and nothing else, until it expires
    or the insurer revokes it."""

    __tablename__ = "share_links"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(36), index=True)
    insurer: Mapped[bytes] = mapped_column(LargeBinary(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


# --- accountable acceptance (issue 10 item 3) ---------------------------------------------


class PromiseRow(Base):
    """One signed acceptance promise of version 1 (one signature per record), as issued
    before promise batches (PromiseBatchRow); still read, extended and rejected, no longer
    written by publishing.

    Stored as its fields and signature, not as a JSON document (a few dozen bytes a record
    instead of ~700); the deployment it names is this database's. A digest has more than
    one only when a rejected record was published again: the older promise then holds its
    signed rejection. ``deadline`` is the one in force (extensions applied), in Unix seconds
    like the document, so due promises are found by index."""

    __tablename__ = "promises"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    promise_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    """SHA-256 of the signed bytes (not indexed: rows are found by digest and deadline; each
    index costs every publish)."""
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    issuer: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    """The key that signed the record."""
    urgent: Mapped[bool] = mapped_column(Boolean)
    accepted_at: Mapped[int] = mapped_column(BigInteger)
    merge_delay: Mapped[int] = mapped_column(Integer)
    signer: Mapped[bytes] = mapped_column(LargeBinary(32))
    signer_key_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(128))
    deadline: Mapped[int] = mapped_column(BigInteger, index=True)
    rejection: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The signed rejection (JSON) that ended it, if the record was rejected at logging."""


class PromiseBatchRow(Base):
    """The promises of one publish call (``claimx.promise/2``): one signature over the batch
    statement, and what rebuilds each record's leaf with the records table: ``leaves`` (for
    each position, the record's id and the number of its (issuer, key id) pair in ``keys``)
    and the merge delays. ``first_deadline``/``last_deadline`` bound its leaves' original
    deadlines, so the promises falling due are found by one index on a row per call."""

    __tablename__ = "promise_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    accepted_at: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    signer: Mapped[bytes] = mapped_column(LargeBinary(32))
    signer_key_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(128))
    merge_delay: Mapped[int] = mapped_column(Integer)
    urgent_merge_delay: Mapped[int] = mapped_column(Integer)
    first_deadline: Mapped[int] = mapped_column(BigInteger)
    last_deadline: Mapped[int] = mapped_column(BigInteger, index=True)
    keys: Mapped[bytes] = mapped_column(LargeBinary)
    """(issuer, key id) pairs, 64 bytes each, that ``leaves`` refers to by number."""
    leaves: Mapped[bytes] = mapped_column(LargeBinary)
    """zlib of little-endian int64s: the record ids (the first, then differences), then
    each position's key number (gateway.services.promises packs them)."""


class PromiseLeafRow(Base):
    """Where a record's latest promise/2 is: its batch and position (a dozen bytes a record,
    the only per-record cost of a promise). A record rejected then published again moves
    to its new batch; its earlier batch still lists it, so that tree still rebuilds."""

    __tablename__ = "promise_leaves"
    record_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(ForeignKey("promise_batches.id"))
    position: Mapped[int] = mapped_column(Integer)


class PromiseMarkRow(Base):
    """A signed extension or rejection of a promise/2 (outages and revocations only: one
    signature each). An extension's ``deadline`` is the one it puts in force."""

    __tablename__ = "promise_marks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("promise_batches.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``extension`` or ``rejection``."""
    deadline: Mapped[int | None] = mapped_column(BigInteger, index=True, nullable=True)
    document: Mapped[str] = mapped_column(Text)


class PromiseExtensionRow(Base):
    """A signed extension of an open promise (gateway.core.promise.Extension)."""

    __tablename__ = "promise_extensions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    promise_row: Mapped[int] = mapped_column(ForeignKey("promises.id"), index=True)
    extended_at: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
