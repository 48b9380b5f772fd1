"""Who may reach what: every route as every role (the matrix, which must list every route),
the member directory the roles come from, unknown routes and hostile bodies refused in
the error body."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.core.types import Role
from gateway.services.push.endpoints import list_endpoints, register_endpoint, remove_endpoint
from gateway.services.wiring import Services
from gateway.store.tables import (
    Delivery,
    Event,
    utcnow,
)
from tests.services.claims_support import (
    CLAIMANT,
    M,
    bind,
    claim_body,
    open_claim,
    publish,
)

ALL = {"hospital", "police", "insurer", "insurer2", "auditor"}


ROUTES: list[tuple[str, str, set[str]]] = [
    # method, path template, roles allowed (others must get 401/403/404, never 2xx or 5xx)
    ("POST", "/v1/records", {"hospital", "police"}),
    ("POST", "/v1/records/batch", {"hospital", "police"}),
    ("GET", "/v1/records/{digest}", {"hospital", "police", "insurer", "insurer2", "auditor"}),
    ("GET", "/v1/records/{digest}/envelope", {"hospital", "insurer"}),
    ("GET", "/v1/records/{digest}/receipt", {"hospital", "insurer"}),
    ("GET", "/v1/records/{digest}/proof", {"hospital", "police", "insurer", "insurer2",
                                           "auditor"}),
    ("GET", "/v1/records/{digest}/access-log", {"hospital", "auditor"}),
    ("POST", "/v1/records/{digest}/erase", {"hospital"}),
    ("GET", "/v1/records/{digest}/promise", ALL),  # any member may hold the exchange to it
    ("GET", "/v1/log/leaves", ALL),  # digests, issuers, key ids: what the monitor checks
    ("GET", "/v1/log/head", {"hospital", "police", "insurer", "insurer2", "auditor"}),
    ("POST", "/v1/claims", {"insurer", "insurer2"}),
    ("GET", "/v1/claims", {"insurer", "insurer2"}),
    ("GET", "/v1/claims/{claim}", {"insurer"}),
    ("POST", "/v1/claims/{claim}/requests", {"insurer"}),
    ("POST", "/v1/claims/{claim}/consent/withdraw", {"insurer"}),
    ("POST", "/v1/claims/{claim}/close", {"insurer"}),
    ("POST", "/v1/consents/withdraw", ALL | {"anonymous"}),  # the claimant's signature decides
    ("GET", "/v1/bindings/{binding}", {"hospital", "auditor"}),  # its attester and auditors
    ("GET", "/v1/requests", {"hospital", "police", "insurer", "insurer2"}),
    ("POST", "/v1/requests/{request}/decline", {"hospital"}),
    ("GET", "/v1/log/consistency?first=1&second=2", ALL),
    ("POST", "/v1/webhooks", ALL),
    ("GET", "/v1/webhooks", ALL),
    ("DELETE", "/v1/webhooks/{endpoint}", {"insurer"}),
    ("GET", "/v1/webhooks/deliveries", ALL),
    ("POST", "/v1/webhooks/deliveries/{delivery}/replay", {"insurer"}),
    ("GET", "/v1/events", ALL),
    ("GET", "/v1/claims/{claim}/events", {"insurer"}),
    ("GET", "/v1/members", ALL),
    ("GET", "/v1/members/{member}", ALL),
    ("POST", "/v1/claims/{claim}/share", {"insurer"}),
    ("GET", "/v1/claims/{claim}/share", {"insurer"}),
    ("DELETE", "/v1/claims/{claim}/share/{share}", {"insurer"}),
    ("GET", "/v1/progress", set()),  # a share link's token, never a member credential
    ("GET", "/v1/status", set()),  # the consortium operator only (no operator in this world)
]


def test_authorisation_matrix_covers_every_route(world: Any) -> None:
    """A new route cannot slip past the matrix below."""
    _sv, client, _m = world
    served = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
              for path, ops in client.app.openapi()["paths"].items() for method in ops
              if path not in ("/healthz", "/readyz", "/metrics")}  # unauthenticated ops routes
    listed = {(method, re.sub(r"\{[^}]+\}", "{}", template.split("?")[0]))
              for method, template, _ in ROUTES}
    assert served == listed


@pytest.mark.slow  # every route as every role: ~20 s
def test_authorisation_matrix(world: Any) -> None:
    """Every role tries every route; the ones it should not reach refuse it clearly."""
    sv, client, m = world
    h = m["hospital"]
    refused, n = 0, 0
    for method, template, allowed in ROUTES:
        for who in [*m.values(), None]:
            n += 1
            person = f"{n:064x}"  # a claimant per round, so claims do not pile up on one person
            claim = open_claim(client, m["insurer"], reference=f"M-{n}", subject=person)
            digest = publish(client, h, subject=person)
            if "receipt" in template or "proof" in template:
                sv.worker.cycle()
            req = client.post(f"/v1/claims/{claim['id']}/requests", headers=m["insurer"].headers,
                              json={"institution": h.hex, "kinds": ["hospital.lab_report"]}
                              ).json()["id"]
            endpoint, delivery = (_parked_delivery(sv, m["insurer"]) if "webhooks/" in template
                                  else ("", 0))
            share = (client.post(f"/v1/claims/{claim['id']}/share",
                                 headers=m["insurer"].headers).json()["id"]
                     if "share/" in template else "")
            claimant = ed25519.Ed25519PrivateKey.generate()
            binding = (bind(client, h, person, claimant)
                       if "bindings" in template or "consents" in template else "")
            path = template.format(digest=digest, claim=claim["id"], request=req,
                                   endpoint=endpoint, delivery=delivery, member=h.hex,
                                   share=share, binding=binding)
            body = (_withdrawal(claimant, person, m["insurer"]) if "consents" in template
                    else _body(template, m, who))
            headers = who.headers if who else {}
            r = client.request(method, path, json=body, headers=headers)
            name = who.slug if who else "anonymous"
            assert r.status_code < 500, (method, path, name, r.text)
            if name in allowed:
                assert r.status_code < 300, (method, template, name, r.text)
            else:
                assert r.status_code in (401, 403, 404), (method, template, name, r.text)
                assert "code" in r.json()["error"]
                refused += 1
            _remove_endpoints(sv, m.values())  # members hold at most 10
    assert refused > 40


def _parked_delivery(sv: Services, owner: M) -> tuple[str, int]:
    """An endpoint of ``owner`` with one parked delivery (as after a receiver kept failing)."""
    with sv.db.session() as s:
        endpoint, _ = register_endpoint(s, owner.id, "http://127.0.0.1:9/hook",
                                        destinations=sv.push.destinations, vault=sv.vault)
        event = Event(member_id=owner.id, type="claim.opened", data="{}")
        s.add(event)
        s.flush()
        d = Delivery(endpoint_id=endpoint.id, event_id=event.id, status="parked", attempts=6,
                     next_attempt_at=utcnow())
        s.add(d)
        s.flush()
        return endpoint.id, d.id


def _remove_endpoints(sv: Services, members: Iterable[M]) -> None:
    with sv.db.session() as s:
        for who in members:
            for endpoint in list_endpoints(s, who.id):
                remove_endpoint(s, who.id, endpoint.id)


def _withdrawal(key: ed25519.Ed25519PrivateKey, subject: str, insurer: M) -> dict[str, Any]:
    statement = {"subject": subject, "insurer": insurer.hex,
                 "withdrawn_at": datetime.now(UTC).isoformat()}
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"withdrawal": statement, "claimant_signature": {
        "algorithm": "ed25519", "public_key": base64.b64encode(pub).decode(),
        "sig": base64.b64encode(key.sign(canonical_bytes(statement))).decode()}}


def _body(template: str, m: dict[str, M], who: M | None) -> Any:
    if template == "/v1/records" or template == "/v1/records/batch":
        signer = who if who is not None and who.key is not None else m["hospital"]
        assert signer.key is not None
        env = sign_packet(new_packet(kind="police.incident_report" if signer.slug == "police"
                                     else "hospital.invoice", issuer=signer.hex,
                                     subject=CLAIMANT, body={}), signer.key).to_json()
        return {"envelopes": [env]} if template.endswith("batch") else env
    if template == "/v1/claims":
        insurer = who if who is not None and who.role == Role.INSURER else m["insurer"]
        return claim_body(insurer, reference=f"R-{datetime.now().timestamp()}")
    if template.endswith("/requests"):
        return {"institution": m["police"].hex, "kinds": ["police.incident_report"]}
    if template.endswith("/decline"):
        return {"reason": "no such case"}
    if template == "/v1/webhooks":
        return {"url": "https://claims.example-insurer.cn/claimx"}
    if template.endswith("/close"):
        return {"outcome": "paid"}
    return None


def test_member_directory_is_the_registry(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    listed = {x["id"]: x for x in client.get("/v1/members", headers=ins.headers).json()}
    assert listed[h.hex]["role"] == "hospital" and listed[p.hex]["role"] == "police"
    assert h.key is not None
    [key] = listed[h.hex]["keys"]
    assert key["key_id"] == "0x" + h.key.key_id.hex() and key["status"] == "valid"
    assert listed[ins.hex]["keys"] == []
    registry = sv.chain.registry(sv.deployment.registry)
    registry.revoke_key(h.id, h.key.key_id)
    one = client.get(f"/v1/members/{h.hex}", headers=p.headers).json()
    assert one["keys"][0]["status"] != "valid"
    missing = client.get("/v1/members/0x" + "ee" * 32, headers=ins.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    assert client.get(f"/v1/members/{h.hex}").status_code == 401


def test_deeply_nested_bodies_are_refused_before_any_parser(world: Any) -> None:
    """200 KB of brackets used to kill the gateway process (json.loads overflowed the C
    stack under the recursion limit web3's dependencies set); now a 400 on every route."""
    _sv, client, m = world
    deep = b"[" * 100_000 + b"]" * 100_000
    claim = open_claim(client, m["insurer"])
    for who, path in [("hospital", "/v1/records"), ("hospital", "/v1/records/batch"),
                      ("insurer", "/v1/claims"), ("insurer", f"/v1/claims/{claim['id']}/requests"),
                      ("insurer", "/v1/webhooks"), ("hospital", "/v1/requests/x/decline")]:
        r = client.post(path, content=b'{"a":' + deep + b"}", headers={
            **m[who].headers, "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep", (path, r.text)
    assert client.get("/v1/claims", headers=m["insurer"].headers).status_code == 200


def test_unknown_routes_answer_in_the_error_body(world: Any) -> None:
    _sv, client, m = world
    r = client.get("/v1/nothing-here", headers=m["insurer"].headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_route"
    r = client.put("/v1/claims", headers=m["insurer"].headers)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
