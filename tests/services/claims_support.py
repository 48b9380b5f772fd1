"""The claims world the services, API and verify tests share: a gateway on the in-process
EVM with a hospital, police, two insurers and an auditor admitted, and the helpers that
publish records, bind claimant keys and open claims under a signed consent."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.binding import BINDING_KIND, binding_body
from gateway.core.consent import ConsentScope, scope_bytes
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import SourceRef, new_packet
from gateway.core.types import Role, hex32, member_id
from gateway.services.auth import issue_credential
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from tests.services.push_support import no_dns

CLAIMANT = "a1" * 32
OTHER = "b2" * 32


@dataclass
class M:
    slug: str
    role: Role
    key: SigningKey | None
    headers: dict[str, str]

    @property
    def id(self) -> bytes:
        return member_id(self.slug)

    @property
    def hex(self) -> str:
        return hex32(self.id)


@pytest.fixture
def world(embedded_chain: Chain, database_url: str,
          tmp_path: Path) -> Iterator[tuple[Services, TestClient, dict[str, M]]]:
    deployment = embedded_chain.deploy()
    sv = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600,
                                 webhook_allow_hosts=["127.0.0.1"]),  # the local receiver
                        chain=embedded_chain, deployment=deployment, db=Database(database_url))
    sv.push.destinations.resolver = no_dns  # public names are registered, never looked up
    registry = embedded_chain.registry(deployment.registry)
    members: dict[str, M] = {}
    for slug, role, signs in [("hospital", Role.HOSPITAL, True), ("police", Role.POLICE, True),
                              ("insurer", Role.INSURER, False), ("insurer2", Role.INSURER, False),
                              ("auditor", Role.AUDITOR, False)]:
        key = SigningKey.generate() if signs else None
        mid = member_id(slug)
        operator = embedded_chain.new_funded_account()
        registry.admit_member(mid, role, slug, [operator])
        if key:
            registry.register_key(mid, key, sender=operator)
        with sv.db.session() as s:
            token = issue_credential(s, mid, "test")
        members[slug] = M(slug, role, key, {"Authorization": f"Bearer {token}"})
    with TestClient(create_app(sv, run_worker=False)) as client:
        BINDERS.append((client, members["hospital"]))
        try:
            yield sv, client, members
        finally:
            BINDERS.clear()


def publish(client: TestClient, m: M, kind: str = "hospital.invoice", subject: str = CLAIMANT,
            issued_at: str = "2026-11-03T10:00:00Z", source: str | None = None) -> str:
    assert m.key is not None
    packet = new_packet(kind=kind, issuer=m.hex, subject=subject, body={"n": "1"},
                        issued_at=issued_at,
                        source=SourceRef(format="csv_bill", sha256=source) if source else None)
    r = client.post("/v1/records", json=sign_packet(packet, m.key).to_json(), headers=m.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


def bind(client: TestClient, attester: M, subject: str,
         key: ed25519.Ed25519PrivateKey) -> str:
    """The attester (an institution that knows the claimant) binds the claimant's key."""
    assert attester.key is not None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    packet = new_packet(kind=BINDING_KIND, issuer=attester.hex, subject=subject,
                        body=binding_body(subject, raw, datetime.now(UTC)))
    r = client.post("/v1/records", json=sign_packet(packet, attester.key).to_json(),
                    headers=attester.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


BINDERS: list[tuple[TestClient, M]] = []
"""The world's hospital, which binds every claimant key claim_body makes (set by ``world``)."""


def claim_body(insurer: M, institutions: list[M] | None = None, kinds: list[str] | None = None,
               kind: str = "accident", expires: timedelta = timedelta(days=30),
               subject: str = CLAIMANT, forge: bool = False,
               reference: str = "C-1", key: ed25519.Ed25519PrivateKey | None = None,
               bound: bool = True, signed_at: datetime | None = None) -> dict[str, Any]:
    key = key or ed25519.Ed25519PrivateKey.generate()
    if bound and BINDERS:
        bind(*BINDERS[-1], subject, key)
    scope = ConsentScope(subject=subject, insurer=insurer.hex,
                         institutions=[i.hex for i in institutions or []], kinds=kinds or [],
                         date_from=datetime(2026, 11, 1).date(),
                         date_to=datetime(2026, 11, 30).date(),
                         expires_at=datetime.now(UTC) + expires, signed_at=signed_at)
    signed = scope_bytes(scope) + (b"x" if forge else b"")
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"reference": reference, "subject": subject, "policy": "P-1",
            "incident_date": "2026-11-01", "kind": kind,
            "consent": {"scope": scope.model_dump(mode="json"), "claimant_signature": {
                "algorithm": "ed25519", "public_key": base64.b64encode(pub).decode(),
                "sig": base64.b64encode(key.sign(signed)).decode()}}}


def open_claim(client: TestClient, insurer: M, **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/claims", json=claim_body(insurer, **kw), headers=insurer.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _auditor_fetch(client: TestClient, auditor: M) -> Any:
    def get(path: str) -> dict[str, Any]:
        r = client.get(path, headers=auditor.headers)
        assert r.status_code == 200, (path, r.text)
        return r.json()  # type: ignore[no-any-return]
    return get


def with_key(sv: Any, m: M) -> M:
    """Give a member (an insurer, say) a registered signing key so it can publish."""
    key = SigningKey.generate()
    registry = sv.chain.registry(sv.deployment.registry)
    operator = sv.chain.new_funded_account()
    registry.add_operator(m.id, operator)  # the council adds it; the member's operator then
    registry.register_key(m.id, key, sender=operator)  # registers the key, with its proof
    return M(m.slug, m.role, key, m.headers)


def bind_past_the_route(sv: Any, m: M, key: ed25519.Ed25519PrivateKey) -> None:
    """Insurers may not publish at all (403 role_forbidden); suppose one got a binding into
    the log anyway (through the publisher, past the route's role check)."""
    assert m.key is not None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    packet = new_packet(kind=BINDING_KIND, issuer=m.hex, subject=CLAIMANT,
                        body=binding_body(CLAIMANT, raw, datetime.now(UTC)))
    sv.publisher.publish([sign_packet(packet, m.key).to_json()])
