"""Evidence requests over HTTP: addressed to active institutions, fulfilled, declined,
filtered by status, and their clocks (green-channel breach, routine expiry) announced once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.services.requests import sweep_clocks
from gateway.store.tables import (
    Event,
    EvidenceRequest,
)
from tests.services.claims_support import (
    open_claim,
    publish,
)


def test_requests_fulfil_decline_and_green_channel_clock(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    claim = open_claim(client, ins)
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": h.hex, "kinds": ["hospital.invoice",
                                                          "hospital.discharge_summary"]})
    assert r.status_code == 201 and r.json()["urgent"] and r.json()["remaining_seconds"] <= 1800
    req = r.json()["id"]
    mine = client.get("/v1/requests", headers=h.headers).json()
    assert [x["id"] for x in mine] == [req]
    assert client.get("/v1/requests", headers=p.headers).json() == []
    publish(client, h)
    assert client.get("/v1/requests", headers=h.headers).json()[0]["status"] == \
        "partly_fulfilled"
    publish(client, h, kind="hospital.discharge_summary")
    assert client.get("/v1/requests", headers=ins.headers).json()[0]["status"] == "fulfilled"
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": p.hex, "kinds": ["police.accident_determination"]})
    police_req = r.json()["id"]
    with sv.db.session() as s:  # 31 minutes pass without an answer
        er = s.get(EvidenceRequest, police_req)
        er.created_at = er.created_at - timedelta(minutes=31)
        er.due_at = er.due_at - timedelta(minutes=31)
    late = [x for x in client.get("/v1/requests", headers=ins.headers).json()
            if x["id"] == police_req][0]
    assert late["breached"] is True and late["status"] == "open"
    r = client.post(f"/v1/requests/{police_req}/decline", headers=h.headers,
                    json={"reason": "not ours"})
    assert r.status_code == 404  # addressed to the police, not the hospital
    r = client.post(f"/v1/requests/{police_req}/decline", headers=p.headers,
                    json={"reason": "case file sealed by court order"})
    assert r.json()["status"] == "declined"
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert view["status"] == "ready"


def test_requests_go_to_active_institutions_and_filter_by_shown_status(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    claim = open_claim(client, ins, kind="routine")
    for who in [m["insurer2"], m["auditor"]]:
        r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                        json={"institution": who.hex, "kinds": ["hospital.invoice"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_institution"
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": "0x" + "ee" * 32, "kinds": ["hospital.invoice"]})
    assert r.json()["error"]["loc"] == ["institution"]
    req = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                      json={"institution": h.hex, "kinds": ["hospital.lab_report"]}).json()
    assert [x["id"] for x in client.get("/v1/requests", params={"status": "open"},
                                        headers=h.headers).json()] == [req["id"]]
    with sv.db.session() as s:  # eight days pass: a routine request shows as expired
        s.get(EvidenceRequest, req["id"]).due_at = datetime.now(UTC) - timedelta(days=1)
    expired = client.get("/v1/requests", params={"status": "expired"}, headers=h.headers)
    assert [x["id"] for x in expired.json()] == [req["id"]]
    assert client.get("/v1/requests", params={"status": "open"}, headers=h.headers).json() == []
    bad = client.get("/v1/requests", params={"status": "lost"}, headers=h.headers)
    assert bad.status_code == 422


def test_overdue_requests_are_announced_once_to_both_sides(world: Any) -> None:
    """The clock sweep pushes a green-channel breach and a routine expiry, each once."""
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    urgent = open_claim(client, ins)
    routine = open_claim(client, ins, kind="routine", reference="C-2")
    asked = {}
    for claim, who in [(urgent, h), (routine, p), (urgent, p)]:
        asked[(claim["id"], who.slug)] = client.post(
            f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
            json={"institution": who.hex, "kinds": ["hospital.lab_report"]}).json()["id"]
    answered = client.post(f"/v1/claims/{urgent['id']}/requests", headers=ins.headers,
                           json={"institution": h.hex, "kinds": ["hospital.invoice"]}).json()
    publish(client, h)  # fulfils `answered` before its clock runs out
    with sv.db.session() as s:
        assert sweep_clocks(s) == 0  # nothing is due yet
    later = datetime.now(UTC) + timedelta(days=8)
    with sv.db.session() as s:
        assert sweep_clocks(s, later) == 3
    with sv.db.session() as s:
        assert sweep_clocks(s, later + timedelta(hours=1)) == 0  # announced once
        rows = s.scalars(select(Event).where(Event.type.in_(["request.breached",
                                                              "request.expired"]))).all()
    seen = sorted((e.type, "0x" + e.member_id.hex(), json.loads(e.data)["request"])
                  for e in rows)
    expected = sorted([(kind, who.hex, req) for (cid, slug), req in asked.items()
                       for kind in ["request.breached" if cid == urgent["id"]
                                    else "request.expired"]
                       for who in (ins, m[slug])])
    assert seen == expected and answered["id"] not in {r for _, _, r in seen}
    page = client.get("/v1/events", headers=p.headers).json()["events"]
    assert {e["type"] for e in page} >= {"request.opened", "request.breached",
                                         "request.expired"}
