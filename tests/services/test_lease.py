"""The anchor lease fences: an epoch raised at every take-over, checked before each chain write
and in each recording transaction; a restarted worker proves its holder id and takes over at
once, no other process can; recovery runs under the lease."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.errors import ClaimxError
from gateway.services.lease import LeaseKeeper, LeaseLost, claim_worker_id
from gateway.services.wiring import build_services
from gateway.store.db import Database
from gateway.store.tables import Anchor
from tests.services.test_reconcile import publish
from tests.support import ROOT, admit


def test_epoch_fences_a_holder_whose_lease_passed(database_url: str) -> None:
    db = Database(database_url)
    a, b = LeaseKeeper(db, "t", "a", 30), LeaseKeeper(db, "t", "b", 30)
    assert a.hold() and a.epoch == 1 and not b.hold()
    assert a.hold() and a.epoch == 1  # a renewal keeps the epoch
    a.hold(ttl=-1)  # a is paused past its lease
    assert b.hold() and b.epoch == 2  # the standby takes over under a new epoch
    with pytest.raises(LeaseLost):
        a.guard()  # a wakes: it may not write
    with pytest.raises(LeaseLost), db.session() as s:
        a.check(s)
    assert b.guard() == 2 and not a.hold()


def test_a_restarted_holder_takes_over_at_once_and_nobody_else(database_url: str) -> None:
    db = Database(database_url)
    old = LeaseKeeper(db, "t", "w1", 30)
    assert old.hold()
    other = LeaseKeeper(db, "t", "w2", 30)
    assert not other.hold()  # the lease has 30 s left
    restarted = LeaseKeeper(db, "t", "w1", 30)  # the same id, proven by its lock file
    assert restarted.hold() and restarted.epoch == 2
    assert not old.hold()  # the old incarnation (if it were alive) is fenced out
    assert not other.hold()


def test_worker_ids_persist_and_are_never_shared_by_live_processes(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from gateway.services.lease import "
            "claim_worker_id as c; print(c(Path(sys.argv[1])))")
    run = [sys.executable, "-c", code, str(tmp_path)]
    first = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    again = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert first == again and first.startswith("worker-")  # a restart proves it is the same
    held = claim_worker_id(tmp_path)  # this process now holds the file's lock
    assert held == first.strip()
    live = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert live.strip() != held  # a second live process gets an id of its own
    assert claim_worker_id(tmp_path, "drill-1") == "drill-1"
    with pytest.raises(ClaimxError) as twice:
        claim_worker_id(tmp_path, "drill-1")
    assert twice.value.code == "worker_id_in_use"
    with pytest.raises(ClaimxError, match="letters"):
        claim_worker_id(tmp_path, "../x")


def test_a_worker_that_lost_its_lease_writes_nothing(embedded_chain: Chain,
                                                     tmp_path: Path) -> None:
    deployment = embedded_chain.deploy()
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    settings = Settings(home=tmp_path)
    leader = build_services(settings, chain=embedded_chain, deployment=deployment, db=db)
    standby = build_services(settings, chain=embedded_chain, deployment=deployment, db=db)
    hospital = admit(embedded_chain, deployment, "hospital.fence")
    publish(leader, hospital, 3, "a")
    leader.worker.cycle()
    publish(leader, hospital, 2, "b")
    leader.worker.hold_lease(ttl=-1)  # paused past its lease
    assert standby.worker.hold_lease()
    log = embedded_chain.evidence_log(deployment.log)
    count = log.head_count()
    with pytest.raises(LeaseLost):
        leader.worker.cycle()
    assert log.head_count() == count  # not one chain write
    standby.worker.cycle()
    with db.session() as s:
        fences = {a.size: a.fence for a in s.scalars(select(Anchor))}
    assert fences == {3: 1, 5: 2}  # each anchor carries the epoch it was written under


def test_two_starting_workers_recover_under_the_lease(embedded_chain: Chain,
                                                      tmp_path: Path) -> None:
    """A head on chain the database has not recorded (a crash after mining): two workers
    starting at once both try to recover it; one records it, the other stands by."""
    deployment = embedded_chain.deploy()
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    settings = Settings(home=tmp_path)
    first = build_services(settings, chain=embedded_chain, deployment=deployment, db=db)
    publish(first, admit(embedded_chain, deployment, "hospital.race"), 4, "a")

    class Crash(BaseException):
        pass

    def crash(at: str) -> None:
        if at == "after_anchor_tx":
            raise Crash

    first.worker.fault = crash
    with pytest.raises(Crash):
        first.worker.cycle()
    first.worker.hold_lease(ttl=-1)  # the crashed worker's lease lapses
    workers = [build_services(settings, chain=embedded_chain, deployment=deployment,
                              db=db).worker for _ in range(2)]
    outcomes: list[str] = []

    def start(w: object) -> None:
        try:
            w.recover()  # type: ignore[attr-defined]
            outcomes.append("recovered")
        except LeaseLost:
            outcomes.append("standing by")

    threads = [threading.Thread(target=start, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["recovered", "standing by"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Anchor)) == 1
