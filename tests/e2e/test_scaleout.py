"""Scale-out: `claimx serve --workers 2` on anvil and PostgreSQL, two processes behind one port.

Several clients publish over HTTP at once; both processes take requests, each with its own
database pool and chain client, and exactly one anchor worker writes (the lease elects it).
Nothing is lost or sequenced twice, every record is anchored, and the chain's heads are the
database's anchors, all written under one epoch of the lease.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.services.anchor import LEASE_NAME
from gateway.services.auth import issue_credential
from gateway.services.wiring import build_services
from gateway.store.tables import Anchor, Lease, Record
from tests.support import Institution, admit, own_anvil, serve_gateway

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CLIENTS, BATCHES, PER_BATCH = 4, 5, 40


def envelopes(inst: Institution, client: int, batch: int) -> list[dict[str, Any]]:
    return [sign_packet(new_packet(kind="hospital.lab_report", issuer=inst.issuer,
                                   subject=f"{client:02x}" * 32,
                                   body={"client": client, "batch": batch, "n": i}),
                        inst.key).to_json() for i in range(PER_BATCH)]


def processes_answering(url: str) -> set[bool]:
    """/readyz's ``this_process`` over fresh connections: {True, False} once both processes
    answered (one holds the lease, the other stands by)."""
    seen: set[bool] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        worker = httpx.get(url + "/readyz", timeout=5).json()["checks"]["worker"]
        if worker["lease_holder"] is not None:
            seen.add(bool(worker["this_process"]))
    return seen


def test_two_processes_behind_one_port_one_anchor_writer(tmp_path: Path, pg_url: str) -> None:
    with own_anvil() as node:
        chain = Chain.connect(node.url)
        dep = chain.deploy()
        dep_file = tmp_path / "deployment.json"
        dep_file.write_text(dep.to_json())
        home = tmp_path / "home"
        sv = build_services(Settings(home=home, rpc_url=node.url, database_url=pg_url,
                                     deployment_file=dep_file), chain=chain, deployment=dep)
        hospital = admit(chain, dep, "hospital.scaleout")
        with sv.db.session() as s:
            token = issue_credential(s, hospital.id, "scaleout")
        bodies = [[envelopes(hospital, c, b) for b in range(BATCHES)] for c in range(CLIENTS)]
        total = CLIENTS * BATCHES * PER_BATCH
        args = ["--workers", "2", "--rpc-url", node.url, "--database-url", pg_url,
                "--deployment", str(dep_file)]
        with serve_gateway(tmp_path, args, dev_members=False,
                           env={"CLAIMX_HOME": str(home),
                                "CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.3"}) as served:
            assert processes_answering(served.url) == {True, False}, served.log_text()

            auth = {"Authorization": f"Bearer {token}"}

            def client(batches: list[list[dict[str, Any]]]) -> int:
                with httpx.Client(base_url=served.url, timeout=60, headers=auth) as http:
                    for batch in batches:
                        r = http.post("/v1/records/batch", json={"envelopes": batch})
                        assert r.status_code == 201, r.text
                return sum(len(b) for b in batches)

            with ThreadPoolExecutor(CLIENTS) as pool:
                assert sum(pool.map(client, bodies)) == total
            deadline = time.monotonic() + 60
            while True:
                head = httpx.get(served.url + "/v1/log/head", headers=auth,
                                 timeout=5).json()["anchored"]
                if head is not None and head["size"] == total:
                    break
                assert time.monotonic() < deadline, (head, served.log_text()[-3000:])
                time.sleep(0.2)
            with sv.db.session() as s:  # read while serving: at shutdown the leader releases
                lease = s.get(Lease, LEASE_NAME)  # the lease and the standby may take it
                epoch = lease.epoch if lease is not None else None
            text = served.log_text()
        assert text.count("Started server process") == 2, text
        assert "Traceback" not in text, text
        _assert_one_writer_nothing_lost(sv, chain, total, epoch)


def _assert_one_writer_nothing_lost(sv: Any, chain: Chain, total: int,
                                    epoch: int | None) -> None:
    log = chain.evidence_log(sv.deployment.log)
    heads = [log.head_at(i) for i in range(log.head_count())]
    with sv.db.session() as s:
        leaves = sorted(s.scalars(select(Record.leaf_index)))
        digests = s.scalar(select(func.count(func.distinct(Record.digest))))
        rows = s.scalars(select(Anchor).order_by(Anchor.size)).all()
        ours = [(a.head_index, a.size, a.root, a.confirmed) for a in rows]
        fences = {a.fence for a in rows}
    assert digests == total and leaves == list(range(total))  # none lost, none twice
    assert ours == [(h.index, h.size, h.root, True) for h in heads]  # heads == anchors
    assert heads[-1].size == total
    assert epoch is not None and fences == {epoch}  # one writer, one epoch
