"""Drill: two `claimx worker` processes on anvil and PostgreSQL; the leader is paused (SIGSTOP)
past its lease, the standby takes over, the leader is resumed. Nothing is lost or anchored
twice, the woken leader writes nothing, and the chain's heads equal the database's anchors."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.services.anchor import LEASE_NAME
from gateway.services.wiring import Services, build_services
from gateway.store.tables import Anchor, Lease, Record
from tests.services.test_reconcile import publish
from tests.support import CLAIMX, Institution, admit, own_anvil, serve_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LEASE = 2.0


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.1)


def lease(sv: Services) -> tuple[str | None, int]:
    with sv.db.session() as s:
        row = s.get(Lease, LEASE_NAME)
        return (row.holder, row.epoch) if row is not None else (None, 0)


def chain_size(chain: Chain, sv: Services) -> int:
    head = chain.evidence_log(sv.deployment.log).latest_head()
    return 0 if head is None else head.size


def test_paused_leader_is_fenced_and_the_standby_takes_over(tmp_path: Path,
                                                             pg_url: str) -> None:
    with own_anvil() as node:
        url = node.url
        chain = Chain.connect(url)
        dep = chain.deploy()
        dep_file = tmp_path / "deployment.json"
        dep_file.write_text(dep.to_json())
        home = tmp_path / "home"  # one home: one operator key; the ids keep the workers apart
        sv = build_services(Settings(home=home, rpc_url=url, database_url=pg_url,
                                     deployment_file=dep_file), chain=chain, deployment=dep)
        hospital = admit(chain, dep, "hospital.failover")
        env = serve_env(tmp_path, {"CLAIMX_HOME": str(home), "CLAIMX_LEASE_SECONDS": str(LEASE),
                                   "CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.2"})
        cmd = [*CLAIMX, "worker", "--rpc-url", url, "--database-url", pg_url, "--deployment",
               str(dep_file)]
        logs = {n: tmp_path / f"worker-{n}.log" for n in "AB"}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name in "AB":
                with logs[name].open("wb") as out:
                    procs[name] = subprocess.Popen(cmd + ["--worker-id", name], env=env,
                                                   stdout=out, stderr=subprocess.STDOUT)
                if name == "A":
                    wait_for(lambda: lease(sv)[0] == "A", 60, "worker A leads")
            total = _drill(sv, chain, hospital, procs)
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGCONT)
                p.terminate()
                p.wait(10)
        a_log = logs["A"].read_text(errors="replace")
        assert "lost the anchor-worker lease" in a_log or "lease passed" in a_log, a_log
        assert "Traceback" not in a_log + logs["B"].read_text(errors="replace")
        _assert_consistent(sv, chain, total)


def _drill(sv: Services, chain: Chain, hospital: Institution,
           procs: dict[str, subprocess.Popen[bytes]]) -> int:
    total = 0
    for i in range(3):  # the leader anchors
        publish(sv, hospital, 20, f"before-{i}")
        total += 20
        time.sleep(0.3)
    wait_for(lambda: chain_size(chain, sv) == total, 30, "A anchors")
    epoch_a = lease(sv)[1]
    procs["A"].send_signal(signal.SIGSTOP)  # paused mid-whatever, past its lease
    for i in range(3):
        publish(sv, hospital, 20, f"paused-{i}")
        total += 20
        time.sleep(0.3)
    wait_for(lambda: lease(sv) == ("B", epoch_a + 1), LEASE + 10, "B takes over")
    wait_for(lambda: chain_size(chain, sv) == total, 30, "B anchors while A is paused")
    time.sleep(LEASE)  # well past A's lease
    procs["A"].send_signal(signal.SIGCONT)  # A wakes with a cycle in its hands
    for i in range(3):
        publish(sv, hospital, 20, f"after-{i}")
        total += 20
        time.sleep(0.3)
    wait_for(lambda: chain_size(chain, sv) == total, 30, "everything anchored")
    time.sleep(1.5)  # time for a misbehaving A to write
    assert lease(sv) == ("B", epoch_a + 1)  # A never took it back
    assert procs["A"].poll() is None and procs["B"].poll() is None
    return total


def _assert_consistent(sv: Services, chain: Chain, total: int) -> None:
    log = chain.evidence_log(sv.deployment.log)
    heads = [log.head_at(i) for i in range(log.head_count())]
    with sv.db.session() as s:
        leaves = sorted(s.scalars(select(Record.leaf_index)))
        rows = s.scalars(select(Anchor).order_by(Anchor.size)).all()
        ours = [(a.head_index, a.size, a.root, a.confirmed) for a in rows]
        fences = {a.fence for a in rows}
    assert leaves == list(range(total))  # none lost, none twice
    assert ours == [(h.index, h.size, h.root, True) for h in heads]  # heads == anchors
    assert len(fences) >= 2  # written under both leaders' epochs
