"""The auditor's proof that every payload read of a record was consented, from the chain.

The gateway's access log names, for each read, its ``exchange.access`` entry on the evidence
log. Each entry, and the ``insurer.consent`` entry it cites, is fetched as a receipt and
verified against the chain alone (:func:`gateway.verify.receipt.verify_receipt`), must be signed by
the member the registry lists as the exchange operator, and must agree with the other: the
read names this record; the consent carries the claimant's Ed25519 signature over its scope
(RFC 8785 bytes), names the reader as insurer and the record's subject, was logged before
the read and had not expired when the read was logged, and its scope covers the record; and
the consent's claimant key binding holds (:mod:`gateway.verify.binding`: its own entry on
chain, an attester other than the reader that may attest identities and whose key was valid,
this key bound to this subject, not revoked before the read). A read that cites no consent
must be the record's issuer reading its own record.

Limits, reported as such: the record's kind, issuer and date come from the gateway's
metadata (auditors do not read evidence payloads), and a withdrawal the gateway never logged
cannot be seen from the read's side.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from gateway.core.consent import ConsentArtifact, ConsentScope, scope_bytes
from gateway.core.envelope import MAX_DEPTH
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.jsondepth import json_depth
from gateway.core.packet import Packet
from gateway.verify.binding import check_binding
from gateway.verify.entries import Entry, Fail, Fetch, verified_entry
from gateway.verify.receipt import Check, Report, chain_answered


@dataclass
class ReadAudit:
    """One payload read and the checks that prove (or fail to prove) it was allowed."""

    entry: str
    member: str
    claim_id: str | None
    report: Report = field(default_factory=Report)

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "member": self.member, "claim_id": self.claim_id,
                **self.report.to_dict()}


def http_fetch(client: httpx.Client) -> Fetch:
    """A :data:`Fetch` over HTTP (the client carries the base URL and the auditor's token);
    a 4xx or 5xx becomes a ClaimxError with the gateway's error code."""
    def get(path: str) -> dict[str, Any]:
        r = client.get(path)
        if json_depth(r.content) > MAX_DEPTH:  # the auditor trusts no gateway, not even its JSON
            raise ClaimxError(f"GET {path}: the answer nests deeper than {MAX_DEPTH} levels",
                              code="too_deep")
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                err = {}
            raise ClaimxError(f"GET {path}: HTTP {r.status_code} "
                              f"{err.get('message', r.reason_phrase)}",
                              code=str(err.get("code", "http_error")))
        return dict(r.json())
    return get


def audit_reads(digest: str, fetch: Fetch, chain: Any, log_address: str) -> list[ReadAudit]:
    """Audit every payload read of record ``digest`` (hex); an empty list if none."""
    record = fetch(f"/v1/records/{digest}")
    reads = fetch(f"/v1/records/{digest}/access-log")["reads"]
    out = []
    for read in reads:
        audit = ReadAudit(read["log_entry"], read["member"], read["claim_id"])
        try:
            _checks(audit, record, fetch, chain, log_address)
        except Fail as exc:
            name, _, detail = str(exc).partition(": ")
            audit.report.checks.append(Check(name, False, detail))
        except ChainError as exc:
            if not chain_answered(exc):
                raise  # the chain could not be asked: the audit is unchecked, not failed
            audit.report.checks.append(Check("chain answer", False, f"{exc.code}: {exc.msg}"))
        except ClaimxError as exc:
            audit.report.checks.append(Check("gateway answer", False, f"{exc.code}: {exc.msg}"))
        out.append(audit)
    return out


def _checks(audit: ReadAudit, record: dict[str, Any], fetch: Fetch, chain: Any,
            log_address: str) -> None:
    add = audit.report.checks.append
    read = verified_entry(audit.entry, "exchange.access", fetch, chain, log_address)
    add(Check("read entry on chain", True, f"leaf {read.leaf_index}, signed by the exchange "
              "operator, anchored"))
    body = read.packet.body
    if body.get("record") != record["digest"] or body.get("member") != audit.member:
        raise Fail("read entry: names another record or reader than the access log")
    if body.get("consent") is None:
        if body["member"] != record["issuer"]:
            raise Fail("allowed by: a read without consent by a member who is not the issuer")
        add(Check("allowed by", True, "the record's issuer reading its own record"))
        return
    consent = verified_entry(str(body["consent"]), "insurer.consent", fetch, chain,
                              log_address)
    add(Check("consent entry on chain", True, f"leaf {consent.leaf_index}, signed by the "
              "exchange operator, anchored"))
    scope = _claimant_signed_scope(consent.packet)
    add(Check("claimant signature", True, "Ed25519 over the RFC 8785 bytes of the scope"))
    add(Check("consent covers the read", True, _covers(scope, read, consent, record)))
    check_binding(add, read, consent, fetch, chain, log_address)


def _claimant_signed_scope(consent: Packet) -> dict[str, Any]:
    try:
        artifact = ConsentArtifact.model_validate(consent.body["artifact"])
        sig = artifact.claimant_signature
        key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(sig.public_key))
        key.verify(base64.b64decode(sig.sig), scope_bytes(artifact.scope))
    except (KeyError, ValidationError, ValueError, InvalidSignature) as exc:
        raise Fail("claimant signature: missing or does not verify over the scope") from exc
    return artifact.scope


def _covers(scope_obj: dict[str, Any], read: Entry, consent: Entry,
            record: dict[str, Any]) -> str:
    """The scope names the reader and subject, was live when the read was logged, and covers
    the record's issuer, kind and date (as the gateway's metadata states them)."""
    scope = ConsentScope.model_validate(scope_obj)  # validated with the artifact already
    problems = []
    if scope.insurer != read.packet.body["member"]:
        problems.append("names another insurer")
    if scope.subject != read.packet.subject:
        problems.append("is for another claimant")
    if consent.leaf_index >= read.leaf_index:
        problems.append("was logged after the read")
    read_at = datetime.fromisoformat(read.packet.issued_at.replace("Z", "+00:00"))
    if scope.expires_at.astimezone(UTC) <= read_at:
        problems.append("had expired when the read was logged")
    if scope.institutions and record["issuer"] not in scope.institutions:
        problems.append("does not name the record's issuer")
    if scope.kinds and record["kind"] not in scope.kinds:
        problems.append("does not cover the record's kind")
    if not scope.date_from.isoformat() <= record["issued_at"][:10] <= scope.date_to.isoformat():
        problems.append("does not cover the record's date")
    if problems:
        raise Fail("consent covers the read: the consent " + "; ".join(problems))
    return (f"insurer and claimant match; logged before the read; live until "
            f"{scope.expires_at.isoformat()}; covers {record['kind']} of {record['issued_at'][:10]}"
            " (record metadata as the gateway states it)")
