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

Times are Unix seconds; ``included_at`` is the anchoring block's timestamp. This module is
the wire model and the pure rules only (no database, chain or web imports).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.canonical import canonical_bytes
from gateway.core.errors import InputError, VerificationError, from_validation
from gateway.core.keys import PublicKey, SigningKey
from gateway.core.receipt import ChainRef, Inclusion
from gateway.core.types import hex32

PROMISE_VERSION = "claimx.promise/1"
EXTENSION_VERSION = "claimx.promise-extension/1"
REJECTION_VERSION = "claimx.promise-rejection/1"
BUNDLE_VERSION = "claimx.promise-bundle/1"
DOMAIN = b"claimx acceptance promise v1\x00"
"""Prefixed to the canonical (RFC 8785) JSON of every signed document here, so these
signatures can never be taken for an envelope's, a possession proof's or each other's (each
document also carries its own ``version``)."""

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


class Promise(_Signed):
    """The exchange's signed promise to include ``digest`` in an anchored head in time."""

    version: str = Field(PROMISE_VERSION, pattern=r"^claimx\.promise/1$")
    digest: str = Field(pattern=_HEX32)
    issuer: str = Field(pattern=_ID32, description="the publishing member")
    key_id: str = Field(pattern=_ID32, description="the key that signed the record")
    urgent: bool = Field(description="green channel: the short merge delay applies")
    accepted_at: int = Field(ge=0, description="Unix seconds")
    merge_delay: int = Field(ge=0, description="seconds after accepted_at")

    @property
    def deadline(self) -> int:
        """The original deadline (before any extension)."""
        return self.accepted_at + self.merge_delay

    @property
    def promise_id(self) -> str:
        """SHA-256 (hex) of the signed bytes: what extensions and rejections refer to."""
        return hashlib.sha256(self.signing_bytes()).hexdigest()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Promise:
        return _parse(cls, raw, "promise", "invalid_promise")


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
