"""The auditor's proof that a consent's claimant key was bound to the claimant by someone else.

A consent counts only under a live claimant key binding (docs/api.md §7.1). From the consent
entry's ``binding`` digest the auditor fetches the binding's own entry and proves it like a
receipt (anchored in a head on chain, signed by the attester's key valid in the registry
then), then checks, each as a named link: the attester's role may attest identities, it is not
the reader, and its key was still valid when the consent was anchored; the binding binds the
consent's claimant key to the consent's subject and had not expired at the read; and no
revocation the gateway lists was logged before the read.

Limit, reported as such: a revocation the gateway does not list cannot be seen.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from gateway.core.binding import (
    ATTESTER_ROLES,
    BINDING_KIND,
    BINDING_REVOKED_KIND,
    BindingBody,
    BindingRevokedBody,
)
from gateway.core.consent import ConsentArtifact
from gateway.core.errors import ClaimxError
from gateway.core.types import Role, parse_hex32
from gateway.verify.entries import Entry, Fail, Fetch, verified_entry
from gateway.verify.receipt import Check

UNLOGGED = frozenset({"not_yet_logged", "not_yet_anchored", "record_rejected"})
"""Gateway answers for a revocation that is not (yet) on chain: it cannot precede a read whose
entry is anchored, so it is noted, not held against the read."""


def check_binding(add: Any, read: Entry, consent: Entry, fetch: Fetch, chain: Any,
                  log_address: str) -> None:
    """Append the binding's checks to a read's report; raise :class:`Fail` at the first
    link that does not hold."""
    digest = consent.packet.body.get("binding")
    if not isinstance(digest, str):
        raise Fail("identity.binding entry: the consent names no claimant key binding")
    binding = verified_entry(digest, BINDING_KIND, fetch, chain, log_address, by_operator=False)
    add(Check("binding entry on chain", True, f"leaf {binding.leaf_index}, anchored, signed by "
              "the attester's key valid in the registry when anchored"))
    add(Check("binding attester", True, _attester(binding, read, consent, chain, log_address)))
    add(Check("binding binds the claimant", True, _binds(binding, read, consent)))
    add(Check("binding not revoked before the read", True,
              _not_revoked_before(digest, binding, read, fetch, chain, log_address)))


def _attester(binding: Entry, read: Entry, consent: Entry, chain: Any, log_address: str) -> str:
    attester = parse_hex32(binding.packet.issuer, "issuer")
    registry = chain.registry(chain.evidence_log(log_address).registry_address())
    role = registry.member(attester).role
    if role not in ATTESTER_ROLES:
        raise Fail(f"binding attester: {Role(role).name.lower()} members may not attest "
                   "identities")
    if binding.packet.issuer == read.packet.body.get("member"):
        raise Fail("binding attester: the reader bound the claimant key itself")
    at = consent.anchored_at(chain, log_address)
    states = [(sig.keyid, registry.key_status_at(attester, sig.keyid, at))
              for sig in binding.envelope.signatures]
    valid = [keyid for keyid, state in states if state.valid]
    if not valid:
        why = "; ".join(f"key {k.hex()[:16]}…: {s.status}" for k, s in states)
        raise Fail(f"binding attester: no key of the attester was valid when the consent was "
                   f"anchored (chain time {at}): {why}")
    return (f"{Role(role).name.lower()} member {binding.packet.issuer[:18]}…, not the reader; "
            f"key {valid[0].hex()[:16]}… valid when the consent was anchored (chain time {at})")


def _binds(binding: Entry, read: Entry, consent: Entry) -> str:
    try:
        body = BindingBody.model_validate(binding.packet.body)
    except ValidationError as exc:
        raise Fail("binding binds the claimant: the binding's body is malformed") from exc
    artifact = ConsentArtifact.model_validate(consent.packet.body["artifact"])  # checked before
    problems = []
    if not body.subject == binding.packet.subject == artifact.parsed.subject:
        problems.append("is for another subject than the consent")
    if body.key_raw != base64.b64decode(artifact.claimant_signature.public_key):
        problems.append("binds another key than the one that signed the consent")
    read_at = datetime.fromisoformat(read.packet.issued_at.replace("Z", "+00:00"))
    if body.expires_at is not None and body.expires_at.astimezone(UTC) <= read_at:
        problems.append("had expired when the read was logged")
    if problems:
        raise Fail("binding binds the claimant: the binding " + "; ".join(problems))
    return "the consent's signing key to the consent's subject" + (
        f", live until {body.expires_at.isoformat()}" if body.expires_at else "")


def _not_revoked_before(digest: str, binding: Entry, read: Entry, fetch: Fetch, chain: Any,
                        log_address: str) -> str:
    listed = fetch(f"/v1/bindings/{digest}").get("revocations", [])
    if not isinstance(listed, list):
        raise Fail("binding not revoked before the read: the gateway's revocation list is "
                   "malformed")
    notes = []
    for rev in listed:
        try:
            entry = verified_entry(str(rev), BINDING_REVOKED_KIND, fetch, chain, log_address,
                                   by_operator=False)
        except ClaimxError as exc:
            if exc.code not in UNLOGGED:
                raise
            notes.append(f"revocation {str(rev)[:16]}… not on chain ({exc.code})")
            continue
        except Fail as exc:
            notes.append(f"revocation {str(rev)[:16]}… does not verify ({exc})")
            continue
        if not _revokes(entry, binding, digest):
            notes.append(f"entry {str(rev)[:16]}… is not the attester's revocation of it")
        elif entry.leaf_index < read.leaf_index:
            raise Fail(f"binding not revoked before the read: revoked by entry {str(rev)[:16]}… "
                       f"(leaf {entry.leaf_index}) before the read (leaf {read.leaf_index})")
        else:
            notes.append(f"revoked after the read (leaf {entry.leaf_index})")
    return "; ".join(notes) or "the gateway lists no revocation"


def _revokes(entry: Entry, binding: Entry, digest: str) -> bool:
    try:
        body = BindingRevokedBody.model_validate(entry.packet.body)
    except ValidationError:
        return False
    return (entry.packet.issuer == binding.packet.issuer
            and body.binding.lower() == digest.lower().removeprefix("0x"))
