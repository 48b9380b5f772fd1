"""The operator's /v1/status: readiness, log size, the latest anchored head and its tx,
anchor lag, webhook backlog; operator credential only."""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy.exc import SADeprecationWarning

from gateway.core.types import Role, member_id
from gateway.services.auth import issue_credential
from tests.services.claims_support import (
    publish,
    world,  # noqa: F401 - fixture
)


def test_operator_sees_status_and_no_one_else_does(world: Any) -> None:  # noqa: F811
    sv, client, m = world
    registry = sv.chain.registry(sv.deployment.registry)
    op = member_id("operator.test")
    registry.admit_member(op, Role.OPERATOR, "Test Operator", [])
    with sv.db.session() as s:
        headers = {"Authorization": "Bearer " + issue_credential(s, op, "test")}
    before = client.get("/v1/status", headers=headers)
    assert before.status_code == 200, before.text
    assert before.json()["latest_anchor"] is None
    publish(client, m["hospital"])
    sv.worker.cycle()
    with warnings.catch_warnings():  # no deprecated SQLAlchemy API on the readiness path
        warnings.simplefilter("error", SADeprecationWarning)
        r = client.get("/v1/status", headers=headers).json()
    assert r["status"] == "ready" and r["ready"] is True
    anchor = r["checks"]["anchor"]
    assert anchor["log_size"] >= 1 and anchor["lag"] == 0
    head = r["latest_anchor"]
    assert head["size"] == anchor["anchored_size"] and len(head["tx_hash"]) == 64
    assert r["checks"]["push"] == {"pending": 0, "parked": 0}
    assert r["deployment"]["evidence_log"] == sv.deployment.log
    for who in m.values():
        refused = client.get("/v1/status", headers=who.headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_forbidden"
    assert client.get("/v1/status").status_code == 401
