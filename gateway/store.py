"""Database tables: records, the Merkle log's nodes, local tree heads, chain anchors, leases.

SQLAlchemy 2 typed models with a naming convention; the schema is created and upgraded by
Alembic (``gateway/migrations``), never by ``create_all`` outside tests of the migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Record(Base):
    """One accepted, signature-checked envelope. ``leaf_index`` is set when sequenced."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    issuer: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    issued_at: Mapped[str] = mapped_column(String(32))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    envelope: Mapped[str] = mapped_column(Text)
    """The envelope JSON as published (payload encryption at rest: issue 4)."""
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)

    __table_args__ = (Index("ix_records_pending", "leaf_index", "urgent"),)


class Node(Base):
    """A complete perfect subtree of the Merkle log (see gateway.merkle)."""

    __tablename__ = "merkle_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
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
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lease(Base):
    """Leader election through the database: one anchor worker holds the lease at a time."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
