"""Share links and the progress they open: the insurer's own claims only, hashed tokens,
expiry and revocation refused, the board says steps and names and nothing else."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.store.events import emit
from gateway.store.tables import Claim, ShareLink, utcnow
from tests.services.claims_support import (
    CLAIMANT,
    open_claim,
    publish,
    world,  # noqa: F401 - fixture
)


def share(client: Any, insurer: Any, claim_id: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/v1/claims/{claim_id}/share", json=body or None, headers=insurer.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def board(client: Any, token: str, expect: int = 200) -> dict[str, Any]:
    r = client.get("/v1/progress", headers={"Authorization": f"Share {token}"})
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


def test_link_opens_only_its_claims_steps(world: Any) -> None:  # noqa: F811
    sv, client, m = world
    ins, h = m["insurer"], m["hospital"]
    claim = open_claim(client, ins, institutions=[h])
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": h.hex, "kinds": ["hospital.invoice"]})
    assert r.status_code == 201, r.text
    link = share(client, ins, claim["id"])
    token = link["token"]
    assert link["url"].endswith(f"/progress#t={token}") and token.startswith("cxs_")
    with sv.db.session() as s:
        row = s.scalar(select(ShareLink).where(ShareLink.id == link["id"]))
        assert row is not None and row.token_hash == hashlib.sha256(token.encode()).digest()
    digest = publish(client, h, issued_at="2026-11-05T10:00:00Z")
    seen = board(client, token)
    steps = [st["step"] for st in seen["steps"]]
    assert steps[:2] == ["opened", "requested"] and "received" in steps and "verified" in steps
    requested = seen["steps"][1]
    assert requested["institution"] == "hospital" and requested["kinds"] == ["hospital.invoice"]
    received = next(st for st in seen["steps"] if st["step"] == "received")
    assert received == {"step": "received", "at": received["at"], "kind": "hospital.invoice",
                        "issuer": "hospital"}
    text = str(seen)
    for secret in (CLAIMANT, digest, claim["reference"], "P-1", ins.hex, h.hex):
        assert secret not in text
    assert seen["typical"] is None  # no closed claims yet


def test_only_the_claims_insurer_may_share(world: Any) -> None:  # noqa: F811
    sv, client, m = world
    claim = open_claim(client, m["insurer"])
    other = client.post(f"/v1/claims/{claim['id']}/share", headers=m["insurer2"].headers)
    assert other.status_code == 404 and other.json()["error"]["code"] == "claim_not_found"
    hospital = client.post(f"/v1/claims/{claim['id']}/share", headers=m["hospital"].headers)
    assert hospital.status_code == 403
    anonymous = client.post(f"/v1/claims/{claim['id']}/share")
    assert anonymous.status_code == 401


def test_revoked_expired_and_foreign_tokens_are_refused(world: Any) -> None:  # noqa: F811
    sv, client, m = world
    ins = m["insurer"]
    claim = open_claim(client, ins)
    revoked, expired = share(client, ins, claim["id"]), share(client, ins, claim["id"], days=1)
    board(client, revoked["token"])
    r = client.delete(f"/v1/claims/{claim['id']}/share/{revoked['id']}", headers=ins.headers)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert board(client, revoked["token"], 401)["error"]["code"] == "share_revoked"
    with sv.db.session() as s:
        row = s.get(ShareLink, expired["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert board(client, expired["token"], 401)["error"]["code"] == "share_expired"
    assert board(client, "cxs_" + "A" * 43, 401)["error"]["code"] == "share_unknown"
    bearer = client.get("/v1/progress", headers=ins.headers)  # a member credential opens nothing
    assert bearer.status_code == 401 and bearer.json()["error"]["code"] == "missing_share_token"
    other = client.delete(f"/v1/claims/{claim['id']}/share/{revoked['id']}",
                          headers=m["insurer2"].headers)
    assert other.status_code == 404
    listed = client.get(f"/v1/claims/{claim['id']}/share", headers=ins.headers).json()
    assert {x["id"] for x in listed} == {revoked["id"], expired["id"]}
    assert all("token" not in x for x in listed)


def test_typical_time_needs_five_closed_claims_of_the_kind(world: Any) -> None:  # noqa: F811
    sv, client, m = world
    ins = m["insurer"]
    ids = [open_claim(client, ins, reference=f"T-{i}")["id"] for i in range(6)]
    with sv.db.session() as s:
        for minutes, cid in zip([10, 20, 30, 40, 50, 60], ids, strict=True):
            c = s.get(Claim, cid)
            assert c is not None
            emit(s, ins.id, "claim.ready", {}, cid)
            s.flush()
            c.status = "closed"
            c.created_at = utcnow() - timedelta(minutes=minutes)
    current = open_claim(client, ins, reference="T-now")
    token = share(client, ins, current["id"])["token"]
    assert board(client, token)["typical"] == {"median_seconds": 35 * 60, "claims": 6}
    routine = open_claim(client, ins, reference="R-1", kind="routine")
    assert board(client, share(client, ins, routine["id"])["token"])["typical"] is None


def test_migration_0008_applies_and_reverts(database_url: str) -> None:
    from sqlalchemy import inspect

    from gateway.store.db import Database, downgrade, upgrade

    database = Database(database_url)
    try:
        assert "share_links" in inspect(database.engine).get_table_names()
        downgrade(database.engine, "0007")
        assert "share_links" not in inspect(database.engine).get_table_names()
        upgrade(database.engine)
        assert "share_links" in inspect(database.engine).get_table_names()
        downgrade(database.engine, "0006")  # and 0007 below it: bindings and rejections
        names = inspect(database.engine).get_table_names()
        assert "identity_bindings" not in names and "share_links" not in names
        upgrade(database.engine)
        assert {"identity_bindings", "claimant_withdrawals"} <= set(
            inspect(database.engine).get_table_names())
    finally:
        database.engine.dispose()
