"""Response models of the health, records, claims and members routes (push keeps its own in
gateway.api.push): what OpenAPI documents and what each route returns.

The services build these views; the models state their shape, fields in the order they go
on the wire (changing the order changes the JSON). Timestamps the services write with
``isoformat()`` stay ``str`` here so the JSON keeps its ``+00:00`` (a ``datetime`` field
would render UTC as ``Z``); docs/api.md describes the same format. Receipts, inclusion
proofs and anchored heads are the models of :mod:`gateway.core.receipt`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.core.promise import Promise
from gateway.core.receipt import AnchorRef, ChainRef, Inclusion
from gateway.services.records import RecordStatus

RequestStatus = Literal["open", "partly_fulfilled", "fulfilled", "declined", "expired",
                        "cancelled"]
Timestamp = str
"""ISO 8601 date-time in UTC with its offset, as the gateway writes it."""


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    chain_id: int


# records and the log

class SignatureModel(BaseModel):
    """One DSSE signature (also part of the envelope routes/records.py accepts)."""

    keyid: str = Field(description="0x-hex SHA-256 of the signing key's SubjectPublicKeyInfo")
    sig: str = Field(description="base64 signature over the DSSE PAE")


class EnvelopeOut(BaseModel):
    """The signed envelope as stored: the payload type, the signatures, the payload."""

    payloadType: str = Field(examples=["application/vnd.claimx.packet+json"])  # noqa: N815
    signatures: list[SignatureModel]
    payload: str = Field(description="base64 of the packet's RFC 8785 bytes")


class Published(BaseModel):
    digest: str
    duplicate: bool = Field(description="already stored: not a second leaf")
    urgent: bool
    kind: str
    key_status: str = Field("fresh", description='"stale": the chain was down and the '
                            "signing key was checked against the registry's last answer")
    promise: Promise | None = Field(None, description="the exchange's signed acceptance "
                                    "promise: in an anchored head within merge_delay seconds "
                                    "of accepted_at, or a signed rejection (GET "
                                    "/v1/records/{digest}/promise follows it)")


class RecordAnchor(BaseModel):
    """The first tree head anchored on chain that includes the record."""

    head_index: int
    size: int
    tx_hash: str
    block_number: int


class RecordOut(BaseModel):
    digest: str
    status: RecordStatus = Field(description="accepted (stored), logged (has a leaf index), "
                                 "anchored (a tree head on chain covers it), rejected (its key "
                                 "was no longer valid when it was to be logged: never appended)")
    kind: str
    issuer: str = Field(description="0x member id")
    issued_at: str = Field(description="as the packet states it")
    accepted_at: Timestamp
    urgent: bool
    leaf_index: int | None
    erased: bool
    anchored_in: RecordAnchor | None
    reject_code: str | None = Field(default=None, description="why a rejected record was "
                                    "rejected: key_revoked, member_suspended, …")


class ProofOut(Inclusion):
    """An inclusion proof against the latest anchored head, without the payload."""

    chain: ChainRef


class LogHead(BaseModel):
    log_size: int = Field(description="every entry, the exchange's own included; ahead of "
                          "anchored.size until the next anchor")
    anchored: AnchorRef | None = Field(description="the latest tree head anchored on chain")
    chain: ChainRef


class LeafOut(BaseModel):
    """One leaf of the log as a monitor sees it: no subject, no payload."""

    index: int = Field(ge=0)
    digest: str = Field(description="the record's SHA-256 (the leaf is SHA-256(0x00 || it))")
    issuer: str = Field(description="0x member id of the issuing member")
    key_id: str = Field(description="0x id of the key that signed the record")
    kind: str


class LeavesOut(BaseModel):
    """A page of the log's leaves, in index order."""

    log_size: int
    start: int
    leaves: list[LeafOut]


class ConsistencyOut(BaseModel):
    """RFC 9162 §2.1.4 consistency proof between two sizes of the log."""

    first: int
    second: int
    root1: str
    root2: str
    proof: list[str]


class Erased(BaseModel):
    digest: str
    erased: bool


class AccessRead(BaseModel):
    member: str = Field(description="0x member id of the reader")
    claim_id: str | None
    consent_id: str | None
    at: Timestamp
    log_entry: str = Field(description="digest of the exchange.access entry on the log")


class AccessLogOut(BaseModel):
    digest: str
    reads: list[AccessRead]


# claims and evidence requests

class RequestOut(BaseModel):
    """An evidence request with its response clock."""

    id: str
    claim_id: str
    institution: str = Field(description="0x member id asked")
    kinds: list[str]
    status: RequestStatus = Field(description="a routine request still open past due_at "
                                  "shows expired")
    urgent: bool = Field(description="green channel: a 30-minute clock")
    note: str
    created_at: Timestamp
    due_at: Timestamp
    elapsed_seconds: int
    remaining_seconds: int
    breached: bool = Field(description="a green-channel request answered late or still open "
                           "past due_at")
    decline_reason: str | None


class ClaimSummary(BaseModel):
    id: str
    reference: str
    subject: str
    policy: str
    incident_date: str
    kind: Literal["routine", "critical_illness", "accident"]
    status: Literal["open", "ready", "closed"]
    green_channel: bool
    created_at: Timestamp
    outcome: Literal["paid", "denied", "withdrawn"] | None
    closed_at: Timestamp | None


class ConsentOut(BaseModel):
    id: str
    digest: str = Field(description="the consent's entry on the evidence log")
    live: bool
    expires_at: Timestamp
    withdrawn_at: Timestamp | None


class ClaimRecordOut(BaseModel):
    digest: str
    kind: str
    issuer: str
    issued_at: str
    verified: bool = Field(description="false once the record is rejected at logging time")
    urgent: bool
    status: RecordStatus
    reject_code: str | None = None
    duplicate_of: str | None = Field(description="the first copy of the same source document")
    duplicates: list[str] = Field(description="later copies of this record's source document")


class TimelineEvent(BaseModel):
    id: int
    type: str
    claim_id: str | None
    at: Timestamp
    data: dict[str, Any]


class ClaimView(ClaimSummary):
    consent: ConsentOut | None
    records: list[ClaimRecordOut] = Field(description="the first copy of each document")
    duplicates: list[ClaimRecordOut]
    requests: list[RequestOut]
    timeline: list[TimelineEvent] = Field(description="the insurer's events of this claim")


# the member directory

class MemberKey(BaseModel):
    key_id: str
    algorithm: str = Field(examples=["ed25519", "ecdsa_p256"])
    status: str = Field(description="at the chain time `at`", examples=["valid", "revoked"])
    public_key: str = Field(description="0x-hex compact form: Ed25519 raw, P-256 compressed")


class MemberOut(BaseModel):
    id: str
    name: str
    role: str = Field(examples=["hospital", "police", "civil", "insurer", "auditor",
                                "operator"])
    admitted_at: int = Field(description="unix seconds, chain time")
    suspended_at: int | None
    at: int = Field(description="the chain time the key statuses are for")
    keys: list[MemberKey]
