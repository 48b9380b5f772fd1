"""Acceptance promises: what the exchange signs when it accepts a record, and how it ends.

Every 2xx publish returns a :class:`Promise` signed by the exchange operator's registered key:
the record's digest, its issuer and signing key, when it was accepted and the maximum merge
delay (seconds) within which the record will be included in a tree head anchored on chain.
It names the deployment (chain id, evidence log, registry) and the signer (member id, key
id), so it cannot be replayed for another deployment and anyone can check the signature
against the registry on chain without trusting the exchange (gateway/verify/promise.py).

While the chain is down the exchange cannot anchor; it then signs an :class:`Extension`
(new deadline, reason), visible to the publisher, instead of silently missing the deadline.
A record whose key the registry says is no longer valid at logging time is never appended:
its promise ends in a signed :class:`Rejection` (code, time; checkable against the registry).

Deciding a promise (:func:`decide`), given the promise, its extensions and the chain/log
state, after checking every signature against the registry (the caller's job):

* the deadline in force starts at ``accepted_at + merge_delay``; extensions are applied in
  order of ``extended_at``, each only if it binds to this promise (same promise id, digest
  and deployment) and was made no later than the deadline it extends, and only if it moves
  the deadline later (:func:`effective_deadline`);
* **kept**: the digest is included in an anchored head (an inclusion proof against a head on
  chain) whose block time is no later than the deadline in force;
* **rejected** (kept too: the promise ended honestly): a signed rejection binding to this
  promise, made no later than the deadline in force;
* **open**: neither yet, and ``now`` is no later than the deadline in force;
* **broken**: neither by the deadline in force (included late counts as broken). A broken
  promise, with its signature checked against the registry, is the institution's proof
  that the exchange broke it.

Promise batches (``claimx.promise/2``): the records accepted in one publish call share ONE
signature, over a batch statement (deployment, signer, ``accepted_at``, the size of the batch
and the RFC 9162 Merkle root over one leaf per record). A record's leaf commits to its own
fields (digest, issuer, key id, urgent, merge delay), so nothing of a promise is unsigned;
each promise carries its batch size, index, root and inclusion path, so it verifies alone
(:meth:`Promise.check_batch`). A ``claimx.promise/1`` document (one signature per record, as
issued before batches) still verifies by the same calls.

Times are Unix seconds; ``included_at`` is the anchoring block's timestamp. This module is
the wire model and the pure rules only (no database, chain or web imports).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from gateway.core import merkle
from gateway.core.canonical import canonical_bytes
from gateway.core.construct import construct
from gateway.core.errors import InputError, ProofError, VerificationError, from_validation
from gateway.core.keys import PublicKey, SigningKey
from gateway.core.receipt import ChainRef, Inclusion
from gateway.core.types import hex32

PROMISE_VERSION = "claimx.promise/1"
BATCH_VERSION = "claimx.promise/2"
"""A promise of a batch (one signature per publish call): the version of the promise
document and of the batch statement it carries the signature of."""
EXTENSION_VERSION = "claimx.promise-extension/1"
REJECTION_VERSION = "claimx.promise-rejection/1"
BUNDLE_VERSION = "claimx.promise-bundle/1"
DOMAIN = b"claimx acceptance promise v1\x00"
"""Prefixed to the canonical (RFC 8785) JSON of every signed document here, so these
signatures can never be taken for an envelope's, a possession proof's or each other's (each
document also carries its own ``version``)."""
BATCH_DOMAIN = b"claimx acceptance promise batch v2\x00"
"""Prefixed to the canonical JSON of a batch statement (the signed bytes of a promise/2)."""
LEAF_DOMAIN = b"claimx acceptance promise leaf v2\x00"
"""Prefixed to a record's leaf entry in a batch tree: an entry is never a bare 32-byte
digest (the evidence log's leaves) nor any signed document's bytes."""
ID_DOMAIN = b"claimx acceptance promise id v2\x00"
"""Prefixed to what a promise/2's id hashes (statement, index, leaf)."""

PromiseState = Literal["open", "kept", "rejected", "broken"]
STATES: tuple[PromiseState, ...] = ("open", "kept", "rejected", "broken")

_HEX32 = r"^[0-9a-f]{64}$"
_ID32 = r"^0x[0-9a-f]{64}$"
_CODE = r"^[a-z][a-z0-9_]{0,63}$"


class Signer(BaseModel):
    """Who signed: the exchange operator member and the registered key it used."""

    model_config = ConfigDict(extra="forbid")
    member_id: str = Field(pattern=_ID32)
    key_id: str = Field(pattern=_ID32)


class _Signed(BaseModel):
    """A document signed over ``DOMAIN + JCS(fields except "signature")``."""

    model_config = ConfigDict(extra="forbid")
    chain: ChainRef
    signer: Signer
    signature: str = Field("", description="base64 signature by the signer's key")

    def payload(self) -> dict[str, Any]:
        """The signed fields: everything but the signature."""
        return self.model_dump(mode="json", exclude={"signature"})

    def signing_bytes(self) -> bytes:
        return DOMAIN + canonical_bytes(self.payload())

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError("signature is not valid base64", code="bad_base64",
                             loc=["signature"]) from exc

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


class BatchProof(BaseModel):
    """Where a promise/2 sits in its batch: the signed statement's size and root, and the
    RFC 9162 inclusion path of this record's leaf."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1, description="records in the batch (the statement's)")
    index: int = Field(ge=0, description="this record's leaf in the batch tree")
    root: str = Field(pattern=_HEX32, description="the batch tree's root (the statement's)")
    path: list[Annotated[str, Field(pattern=_HEX32)]] = Field(
        max_length=64, description="inclusion path, leaf to root (hex)")


class Promise(_Signed):
    """The exchange's signed promise to include ``digest`` in an anchored head in time.

    Version 1 is signed alone; version 2 (``batch`` set) by its batch's one signature over
    :meth:`statement`, with this record's leaf proven in the batch's root."""

    version: str = Field(PROMISE_VERSION, pattern=r"^claimx\.promise/[12]$")
    digest: str = Field(pattern=_HEX32)
    issuer: str = Field(pattern=_ID32, description="the publishing member")
    key_id: str = Field(pattern=_ID32, description="the key that signed the record")
    urgent: bool = Field(description="green channel: the short merge delay applies")
    accepted_at: int = Field(ge=0, description="Unix seconds")
    merge_delay: int = Field(ge=0, description="seconds after accepted_at")
    batch: BatchProof | None = Field(None, description="version 2: the record's place in "
                                     "the batch whose statement the signature is over",
                                     exclude_if=lambda v: v is None)
    """A version 1 document keeps its exact fields (its signed bytes among them): no
    ``batch`` key at all, rather than a null."""

    @model_validator(mode="after")
    def _batch_iff_v2(self) -> Promise:
        if (self.version == BATCH_VERSION) != (self.batch is not None):
            raise ValueError("a claimx.promise/2 has a batch, a claimx.promise/1 none")
        return self

    @property
    def deadline(self) -> int:
        """The original deadline (before any extension)."""
        return self.accepted_at + self.merge_delay

    def statement(self) -> dict[str, Any]:
        """Version 2: the batch statement, what the signature is over (after BATCH_DOMAIN)."""
        if self.batch is None:
            raise InputError("a claimx.promise/1 has no batch statement", code="invalid_promise")
        return {"version": BATCH_VERSION, "chain": self.chain.model_dump(mode="json"),
                "signer": self.signer.model_dump(mode="json"), "accepted_at": self.accepted_at,
                "size": self.batch.size, "root": self.batch.root}

    def signing_bytes(self) -> bytes:
        if self.batch is None:
            return super().signing_bytes()
        return BATCH_DOMAIN + canonical_bytes(self.statement())

    def leaf(self) -> Leaf:
        return Leaf(bytes.fromhex(self.digest), bytes.fromhex(self.issuer[2:]),
                    bytes.fromhex(self.key_id[2:]), self.urgent, self.merge_delay)

    def check_batch(self) -> None:
        """Version 2: raise unless this record's leaf (its own fields) is leaf ``index`` of
        the batch the statement names. (The signature is :func:`verify_signature`'s.)"""
        if self.batch is None:
            return
        b = self.batch
        try:
            merkle.verify_inclusion(self.leaf().hash(), b.index, b.size,
                                    [bytes.fromhex(p) for p in b.path], bytes.fromhex(b.root))
        except (ProofError, ValueError) as exc:
            raise VerificationError(f"the promise is not in the batch its signature covers "
                                    f"(a field, the index or the path was altered): {exc}",
                                    code="bad_promise_batch") from exc

    @property
    def promise_id(self) -> str:
        """What extensions and rejections refer to, a stable id of this record's promise:
        version 1, SHA-256 (hex) of the signed bytes; version 2, SHA-256 of ID_DOMAIN, the
        statement's hash, the index (8 bytes) and the leaf hash. (Not cached:
        ``model_copy`` would carry a cached id into an altered copy.)"""
        signed = hashlib.sha256(self.signing_bytes()).digest()
        if self.batch is None:
            return signed.hex()
        return hashlib.sha256(ID_DOMAIN + signed + self.batch.index.to_bytes(8, "big")
                              + self.leaf().hash()).hexdigest()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Promise:
        return _parse(cls, raw, "promise", "invalid_promise")


class Leaf(NamedTuple):
    """One record's leaf in a promise batch: the fields of its promise that are its own."""

    digest: bytes
    issuer: bytes
    key_id: bytes
    urgent: bool
    merge_delay: int

    def entry(self) -> bytes:
        """LEAF_DOMAIN, digest, issuer, key id (32 bytes each), urgent (1 byte) and merge
        delay (8 bytes, big-endian): fixed width, so no two leaves share an entry."""
        return b"".join((LEAF_DOMAIN, self.digest, self.issuer, self.key_id,
                         b"\x01" if self.urgent else b"\x00",
                         self.merge_delay.to_bytes(8, "big")))

    def hash(self) -> bytes:
        return merkle.leaf_hash(self.entry())


class PromiseBatch:
    """The promises of one publish call: one tree over their leaves, one signature over the
    statement; :meth:`promise` is each record's self-contained promise/2."""

    def __init__(self, chain: ChainRef, signer: Signer, accepted_at: int,
                 leaves: Sequence[Leaf], signature: bytes) -> None:
        self.chain, self.signer, self.accepted_at = chain, signer, accepted_at
        self.leaves, self.signature = list(leaves), signature
        self.tree = merkle.levels([leaf.hash() for leaf in self.leaves])
        self._hex = [[h.hex() for h in level] for level in self.tree]
        self._sig = base64.b64encode(signature).decode()
        self._signed_hash: bytes | None = None

    @property
    def root(self) -> bytes:
        return self.tree[-1][0]

    @classmethod
    def sign(cls, key: SigningKey, signer: Signer, chain: ChainRef, accepted_at: int,
             leaves: Sequence[Leaf]) -> PromiseBatch:
        """One signature for all ``leaves`` (at least one)."""
        batch = cls(chain, signer, accepted_at, leaves, b"")
        batch.signature = key.sign(batch.statement_bytes())
        batch._sig = base64.b64encode(batch.signature).decode()
        return batch

    def statement_bytes(self) -> bytes:
        """What the signature is over: BATCH_DOMAIN + JCS(statement), as Promise has it."""
        return BATCH_DOMAIN + canonical_bytes({
            "version": BATCH_VERSION, "chain": self.chain.model_dump(mode="json"),
            "signer": self.signer.model_dump(mode="json"), "accepted_at": self.accepted_at,
            "size": len(self.leaves), "root": self.root.hex()})

    def promise(self, index: int) -> Promise:
        """Leaf ``index``'s promise. Built unvalidated (``model_construct``): every field is
        this batch's own, and a publish of 10,000 records builds 10,000 of them."""
        leaf = self.leaves[index]
        path, i = [], index
        for level in self._hex[:-1]:
            if i ^ 1 < len(level):
                path.append(level[i ^ 1])
            i >>= 1
        proof = construct(BatchProof, {"size": len(self.leaves), "index": index,
                                        "root": self._hex[-1][0], "path": path})
        return construct(Promise, {
            "chain": self.chain, "signer": self.signer, "signature": self._sig,
            "version": BATCH_VERSION, "digest": leaf.digest.hex(),
            "issuer": "0x" + leaf.issuer.hex(), "key_id": "0x" + leaf.key_id.hex(),
            "urgent": leaf.urgent, "accepted_at": self.accepted_at,
            "merge_delay": leaf.merge_delay, "batch": proof})

    def promise_id(self, index: int) -> bytes:
        """Leaf ``index``'s :attr:`Promise.promise_id` (raw), without building the promise."""
        if self._signed_hash is None:
            self._signed_hash = hashlib.sha256(self.statement_bytes()).digest()
        return hashlib.sha256(ID_DOMAIN + self._signed_hash + index.to_bytes(8, "big")
                              + self.tree[0][index]).digest()


class Extension(_Signed):
    """A signed, visible new deadline for an open promise (e.g. while the chain is down)."""

    version: str = Field(EXTENSION_VERSION, pattern=r"^claimx\.promise-extension/1$")
    promise: str = Field(pattern=_HEX32, description="the extended promise's promise_id")
    digest: str = Field(pattern=_HEX32)
    extended_at: int = Field(ge=0, description="Unix seconds")
    deadline: int = Field(ge=0, description="the new deadline, Unix seconds")
    reason: str = Field(pattern=_CODE, description="e.g. chain_unavailable")

    @classmethod
    def from_json(cls, raw: bytes | str) -> Extension:
        return _parse(cls, raw, "extension", "invalid_promise")


class Rejection(_Signed):
    """The signed end of a promise whose record was not appended (its key was no longer
    valid at logging time: ``code`` is the record's reject code, e.g. key_revoked)."""

    version: str = Field(REJECTION_VERSION, pattern=r"^claimx\.promise-rejection/1$")
    promise: str = Field(pattern=_HEX32, description="the ended promise's promise_id")
    digest: str = Field(pattern=_HEX32)
    rejected_at: int = Field(ge=0, description="Unix seconds (the exchange's clock, like "
                             "accepted_at): compared with the deadline")
    checked_at: int = Field(ge=0, description="the chain time the registry was asked at: the "
                            "key's status there must not be valid (anyone can ask again)")
    code: str = Field(pattern=_CODE)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Rejection:
        return _parse(cls, raw, "rejection", "invalid_promise")


class PromiseBundle(BaseModel):
    """A promise with everything that decides it, as ``GET /v1/records/{digest}/promise``
    returns it and ``claimx verify-promise`` reads it. ``state`` is the exchange's own view;
    verifiers recompute it with :func:`decide`."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(BUNDLE_VERSION, pattern=r"^claimx\.promise-bundle/1$")
    promise: Promise
    extensions: list[Extension] = Field(default_factory=list, max_length=10_000)
    state: PromiseState
    deadline: int = Field(ge=0, description="the deadline in force (after extensions)")
    inclusion: Inclusion | None = None
    """Present once the record is in an anchored head: its proof against the latest head."""
    rejection: Rejection | None = None

    @classmethod
    def from_json(cls, raw: bytes | str) -> PromiseBundle:
        return _parse(cls, raw, "promise bundle", "invalid_promise")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


S = TypeVar("S", bound=_Signed)
B = TypeVar("B", bound=BaseModel)


def _parse(cls: type[B], raw: bytes | str, what: str, code: str) -> B:
    try:
        return cls.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc, what, code) from exc


def sign(cls: type[S], key: SigningKey, member_id: bytes, **fields: Any) -> S:
    """A ``cls`` document of ``fields``, its signer set to (member_id, key), signed by ``key``.

    e.g. ``sign(Promise, key, operator, chain=ref, digest=..., issuer=..., key_id=...,
    urgent=False, accepted_at=t, merge_delay=300)``."""
    unsigned = cls(signer=Signer(member_id=hex32(member_id), key_id=hex32(key.key_id)),
                   signature="", **fields)
    sig = base64.b64encode(key.sign(unsigned.signing_bytes())).decode()
    return unsigned.model_copy(update={"signature": sig})


def verify_signature(doc: _Signed, public: PublicKey) -> None:
    """Raise unless ``doc`` is signed by ``public``, the key its signer names.

    Which key the signer's key id stands for (and that the signer is the exchange operator)
    is the registry's answer on chain: gateway.verify.promise asks it."""
    if hex32(public.key_id) != doc.signer.key_id:
        raise VerificationError("the key given is not the key the document names",
                                code="key_id_mismatch")
    if isinstance(doc, Promise):
        doc.check_batch()
    try:
        public.verify(doc.signature_bytes(), doc.signing_bytes())
    except VerificationError as exc:
        raise VerificationError(f"the {type(doc).__name__.lower()}'s signature does not verify "
                                "with the signer's registered key (tampered or forged)",
                                code="bad_promise_signature") from exc


def same_deployment(a: ChainRef, b: ChainRef) -> bool:
    """Whether two documents name the same chain, evidence log and registry."""
    return (a.chain_id == b.chain_id and a.evidence_log.lower() == b.evidence_log.lower()
            and a.registry.lower() == b.registry.lower())


def binds(promise: Promise, doc: Extension | Rejection) -> bool:
    """Whether an extension or rejection refers to this very promise and deployment."""
    return (doc.promise == promise.promise_id and doc.digest == promise.digest
            and same_deployment(doc.chain, promise.chain))


def effective_deadline(promise: Promise, extensions: list[Extension]) -> int:
    """The deadline in force: the original one moved by each binding extension made in time
    (no later than the deadline it extends) that moves it later. Signatures are the caller's
    to check first."""
    deadline = promise.deadline
    for ext in sorted(extensions, key=lambda e: (e.extended_at, e.deadline)):
        if binds(promise, ext) and ext.extended_at <= deadline < ext.deadline:
            deadline = ext.deadline
    return deadline


@dataclass(frozen=True)
class Decision:
    state: PromiseState
    deadline: int
    """The deadline in force."""
    detail: str


def decide(promise: Promise, extensions: list[Extension], *, now: int,
           included_at: int | None = None, rejection: Rejection | None = None) -> Decision:
    """Kept, rejected, open or broken (see the module docstring), from checked inputs.

    ``included_at``: block time of the first anchored head holding the digest, once an
    inclusion proof against a head on chain has been checked; None when there is none.
    ``rejection``: a rejection whose signature was checked. ``now``: the verifier's time."""
    deadline = effective_deadline(promise, extensions)
    if included_at is not None:
        if included_at <= deadline:
            return Decision("kept", deadline, f"included in a head anchored at {included_at}, "
                            f"deadline {deadline}")
        return Decision("broken", deadline, f"included late: anchored at {included_at}, "
                        f"{included_at - deadline} s after the deadline {deadline}")
    if rejection is not None and binds(promise, rejection) and rejection.rejected_at <= deadline:
        return Decision("rejected", deadline, f"ended by a signed rejection ({rejection.code}) "
                        f"at {rejection.rejected_at}")
    if now <= deadline:
        return Decision("open", deadline, f"not yet included; deadline {deadline} "
                        f"({deadline - now} s from now)")
    return Decision("broken", deadline, f"not included in an anchored head and not rejected "
                    f"by the deadline {deadline} ({now - deadline} s ago)")
