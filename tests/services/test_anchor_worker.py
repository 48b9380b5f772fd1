"""The anchor worker is crash-safe: killed anywhere, it loses nothing and appends nothing twice,
and every acceptance promise open at the crash still ends as docs/api.md §8.5.1 says."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.promise import PromiseBundle
from gateway.services.publish import Accepted
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB
from gateway.store.tables import Anchor, PromiseBatchRow, PromiseLeafRow, PromiseMarkRow, Record
from gateway.verify.promise import verify_promise
from tests.services.anchor_support import publish
from tests.support import Institution, admit, advance_time


class Crash(BaseException):
    """Stands for the process dying: nothing after the crash point runs."""


def crash_once(settings: Settings, chain: Chain, deployment: Deployment, db: Database,
               point: str) -> None:
    """One cycle of a fresh worker on ``db`` that dies (raises Crash) at fault ``point``."""
    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    crashing = build_services(settings, chain=chain, deployment=deployment, db=db).worker
    crashing.fault = crash
    with pytest.raises(Crash):
        crashing.cycle()


def assert_log_intact(db: Database, chain: Chain, deployment: Deployment, expected: int) -> None:
    """Every record is exactly one leaf, leaves are 0..n-1, and the chain holds our root."""
    with db.session() as s:
        indexes = sorted(s.scalars(select(Record.leaf_index)))
        assert indexes == list(range(expected)), "each accepted record is one leaf, no gaps"
        logdb = EvidenceLogDB(s)
        assert logdb.size() == expected
        root = logdb.root(expected)
        anchors = s.scalar(select(func.count()).select_from(Anchor))
    head = chain.evidence_log(deployment.log).latest_head()
    assert head is not None and head.size == expected and head.root == root
    assert anchors == chain.evidence_log(deployment.log).head_count()


@pytest.mark.parametrize("point", ["before_sequence_commit", "after_sequence", "after_anchor_tx"])
def test_crash_at_every_point_recovers(chain: Chain, deployment: Deployment, database_url: str,
                                       tmp_path: Path, point: str) -> None:
    # one worker id throughout: each rebuild is the same worker restarted, which takes its
    # lease back at once (gateway/services/lease.py)
    settings = Settings(home=tmp_path, anchor_batch_max=40, worker_id="crash-test")
    db = Database(database_url)
    services = build_services(settings, chain=chain, deployment=deployment, db=db)
    hospital = admit(chain, deployment, "hospital.crash")
    publish(services, hospital, 25)
    services.worker.cycle()  # a first anchored head, so later ones need consistency proofs
    publish(services, hospital, 60)
    crash_once(settings, chain, deployment, db, point)

    restarted = build_services(settings, chain=chain, deployment=deployment, db=db).worker
    while restarted.cycle().sequenced:
        pass
    assert_log_intact(db, chain, deployment, 85)


def test_green_channel_anchors_without_waiting_for_the_batch(
        embedded_chain: Chain, tmp_path: Path) -> None:
    deployment = embedded_chain.deploy()
    settings = Settings(home=tmp_path, anchor_interval_seconds=3600, anchor_batch_max=10_000,
                        urgent_poll_seconds=0.05)
    services = build_services(settings, chain=embedded_chain, deployment=deployment,
                              db=Database(f"sqlite:///{tmp_path / 'g.db'}"))
    police = admit(embedded_chain, deployment, "police.green")
    publish(services, police, 5)
    assert not services.worker.due()  # routine records wait for the interval or a full batch
    publish(services, police, 1, urgent=True)
    assert services.worker.due()
    thread = services.worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if services.chain.evidence_log(deployment.log).latest_head():
                break
            time.sleep(0.05)
    finally:
        services.worker.stop()
        thread.join(10)
    assert_log_intact(services.db, embedded_chain, deployment, 6)


def test_second_worker_stands_by_while_the_lease_is_held(embedded_chain: Chain,
                                                         tmp_path: Path) -> None:
    deployment = embedded_chain.deploy()
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    settings = Settings(home=tmp_path)
    a = build_services(settings, chain=embedded_chain, deployment=deployment, db=db).worker
    b = build_services(settings, chain=embedded_chain, deployment=deployment, db=db).worker
    assert a.hold_lease() and not b.hold_lease() and a.hold_lease()
    assert b.hold_lease(ttl=30) is False
    a.hold_lease(ttl=-1)  # a's lease lapses (as when its process dies)
    assert b.hold_lease()


@pytest.mark.anvil
@pytest.mark.slow  # real worker processes killed mid-batch
def test_sigkill_mid_batch_loses_and_duplicates_nothing(anvil_url: str, tmp_path: Path) -> None:
    """A real worker process on a real node, killed with SIGKILL at random moments."""
    chain = Chain.connect(anvil_url)
    deployment = chain.deploy()
    dep_file = tmp_path / "deployment.json"
    dep_file.write_text(deployment.to_json())
    db_url = f"sqlite:///{tmp_path / 'kill.db'}"
    settings = Settings(home=tmp_path, rpc_url=anvil_url, database_url=db_url,
                        deployment_file=dep_file)
    services = build_services(settings, chain=chain, deployment=deployment)
    hospital = admit(chain, deployment, "hospital.kill")
    total = 0
    env = {**os.environ, "CLAIMX_ANCHOR_BATCH_MAX": "60", "CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.01",
           "CLAIMX_URGENT_POLL_SECONDS": "0.01", "CLAIMX_LEASE_SECONDS": "0.5"}
    cmd = [sys.executable, "-m", "gateway.cli", "worker", "--rpc-url", anvil_url,
           "--database-url", db_url, "--deployment", str(dep_file)]
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        publish(services, hospital, 150)
        total += 150
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 3.0))  # start-up plus part of the work
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        time.sleep(0.5)  # the dead worker's lease lapses
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        log = chain.evidence_log(deployment.log)
        while time.monotonic() < deadline:
            head = log.latest_head()
            if head is not None and head.size == total:
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    # the head may be on chain but not yet recorded when the worker stops: a restart's
    # recovery records it, exactly as after a kill at that point; recovery runs under the
    # lease, which the stopped worker's id may hold until it lapses (0.5 s)
    deadline = time.monotonic() + 10
    while not services.worker.hold_lease():
        assert time.monotonic() < deadline, "the stopped worker's lease never lapsed"
        time.sleep(0.2)
    services.worker.recover()
    assert kills == 4
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Anchor)) > 1  # work spanned the kills
    assert_log_intact(services.db, chain, deployment, total)


def test_sequencing_a_subset_assigns_leaves_in_id_order_across_gaps(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    """Leaf indexes are set one UPDATE per run of consecutive ids: records left out of a
    batch (as the logging-time key check leaves out rejected ones) keep no leaf, the others
    get consecutive leaves in id order, and the left-out ones follow in the next batch."""
    services = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600),
                              chain=chain, deployment=deployment, db=Database(database_url))
    publish(services, admit(chain, deployment, "hospital.runs"), 12)
    with services.db.session() as s:
        ids = list(s.scalars(select(Record.id).order_by(Record.id)))
    chosen = [i for k, i in enumerate(ids) if k not in (0, 4, 5, 9)]
    with services.db.session() as s:
        EvidenceLogDB(s).sequence(100, chosen)
    with services.db.session() as s:
        leaves = dict(s.execute(select(Record.id, Record.leaf_index)).all())  # type: ignore[arg-type]
    assert [leaves[i] for i in chosen] == list(range(len(chosen)))
    assert all(leaves[i] is None for i in ids if i not in chosen)
    with services.db.session() as s:
        EvidenceLogDB(s).sequence(100)
    with services.db.session() as s:
        leaves = dict(s.execute(select(Record.id, Record.leaf_index)).all())  # type: ignore[arg-type]
    assert [leaves[i] for i in ids if i not in chosen] == list(range(len(chosen), len(ids)))


# -- acceptance promises across a crash ------------------------------------------------------

PROMISE_SETTINGS: dict[str, Any] = {"anchor_batch_max": 40, "worker_id": "crash-test",
                                    "merge_delay_seconds": 600, "urgent_merge_delay_seconds": 120}
"""Deadlines far beyond what a crash, a process start and a restart take on a loaded machine
(anvil's and the in-process EVM's clocks follow the wall clock): only the late runs miss
them, by moving the chain's clock."""
LATE = 1200
"""Seconds the chain's clock moves between the crash and the restart in the late runs: past
every deadline signed (600 s routine, 120 s green channel)."""
KILL_AT = """
import os, signal, sys
from gateway.config import Settings
from gateway.services.wiring import build_services
worker = build_services(Settings()).worker
def die(at: str) -> None:
    if at == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
worker.fault = die
worker.cycle()
sys.exit(3)  # never killed: the point was not reached
"""
"""A worker process that SIGKILLs itself at the named fault point of one cycle."""


def publish_open_promises(sv: Services, inst: Institution,
                          ) -> tuple[list[Accepted], list[Accepted]]:
    """25 records anchored (their promises kept), then 30 routine and 5 green-channel
    records in two publish calls: two promise/2 batches left open, 35 records pending."""
    kept = publish(sv, inst, 25)
    sv.worker.cycle()
    return kept, publish(sv, inst, 30) + publish(sv, inst, 5, urgent=True)


def promise_bundle(sv: Services, digest: bytes) -> PromiseBundle:
    """What GET /v1/records/{digest}/promise answers."""
    with sv.db.session() as s:
        return sv.promises.bundle(s, digest, sv.cache)


def assert_promises(sv: Services, given: list[Accepted], state: str) -> None:
    """Each promise given at publish is the one served, never extended nor rejected (the
    chain never stopped answering), and ends in ``state``, checked against the chain alone;
    once anchored, whether the first head holding it came by the signed deadline decides."""
    now = max(int(time.time()), sv.chain.now())
    log = sv.chain.evidence_log(sv.deployment.log)
    for a in given:
        assert a.promise is not None
        b = promise_bundle(sv, a.digest)
        assert b.promise == a.promise, "the promise served is the one given at publish"
        assert (b.extensions, b.rejection, b.deadline) == ([], None, a.promise.deadline)
        assert b.state == state, (a.digest.hex(), b.state)
        report = verify_promise(b, sv.chain, sv.deployment.log, now=now)
        assert report.verdict == state.upper(), report.to_dict()
        assert all(c.ok for c in report.checks), report.to_dict()
        if state == "open":
            assert b.inclusion is None
            continue
        assert b.inclusion is not None
        first = log.head_at(b.inclusion.anchored_in.head_index)
        assert (first.timestamp <= a.promise.deadline) == (state == "kept")


def assert_promise_rows(db: Database, given: list[Accepted], batches: int) -> None:
    """No promise lost or duplicated: one batch row per publish call, one leaf row per
    record, a distinct promise each, and no extension or rejection marks."""
    with db.session() as s:
        rows = tuple(s.scalar(select(func.count()).select_from(t))
                     for t in (PromiseBatchRow, PromiseLeafRow, PromiseMarkRow))
        rids = set(s.scalars(select(PromiseLeafRow.record_id)))
        records = set(s.scalars(select(Record.id)))
    assert rows == (batches, len(given), 0)
    assert rids == records
    assert len({a.promise.promise_id for a in given if a.promise}) == len(given)


def restart_and_check(settings: Settings, chain: Chain, deployment: Deployment, db: Database,
                      point: str, kept: list[Accepted], pending: list[Accepted], *,
                      late: bool) -> None:
    """After a crash at ``point``: every promise still open (the mined head, if any, is not
    yet recorded), then a restarted worker recovers and anchors the rest, and each promise
    ends as docs/api.md §8.5.1 says."""
    head = chain.evidence_log(deployment.log).latest_head()
    assert head is not None
    assert head.size == (60 if point == "after_anchor_tx" else 25)
    witness = build_services(settings, chain=chain, deployment=deployment, db=db)
    assert_promises(witness, pending, "open")  # not broken, not extended: just waiting
    if late:
        advance_time(chain, LATE)
    restarted = build_services(settings, chain=chain, deployment=deployment, db=db)
    restarted.worker.recover()
    if point == "after_anchor_tx":  # recovery alone records the head the crash left
        assert_log_intact(db, chain, deployment, 60)
    while restarted.worker.cycle().sequenced:
        pass
    assert_log_intact(db, chain, deployment, 60)
    assert_promises(restarted, kept, "kept")
    # the head mined before the crash keeps its promises however late it is recorded (its
    # block time counts); records the crash left out of the log are anchored late after a
    # late restart: broken ("included late"), said by the exchange itself, never papered
    # over by an extension signed after the deadline
    assert_promises(restarted, pending,
                    "broken" if late and point == "before_sequence_commit" else "kept")
    assert restarted.promises.extend_due(db, "chain_unavailable", margin=10 * LATE) == 0
    assert_promise_rows(db, kept + pending, 3)


# the in-process chain only (anvil: the SIGKILL test below), to keep the suite's time
@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
@pytest.mark.parametrize("late", [False, True], ids=["prompt", "late"])
@pytest.mark.parametrize("point", ["before_sequence_commit", "after_anchor_tx"])
def test_crash_ends_every_open_promise_as_documented(chain: Chain, deployment: Deployment,
                                                     database_url: str, tmp_path: Path,
                                                     point: str, late: bool) -> None:
    settings = Settings(home=tmp_path, **PROMISE_SETTINGS)
    db = Database(database_url)
    services = build_services(settings, chain=chain, deployment=deployment, db=db)
    kept, pending = publish_open_promises(services, admit(chain, deployment,
                                                          "hospital.promise.crash"))
    crash_once(settings, chain, deployment, db, point)
    restart_and_check(settings, chain, deployment, db, point, kept, pending, late=late)


@pytest.mark.anvil
@pytest.mark.slow  # a worker process per run
@pytest.mark.parametrize("point", ["before_sequence_commit", "after_anchor_tx"])
def test_sigkill_at_a_fault_point_ends_every_open_promise(anvil_url: str, database_url: str,
                                                          tmp_path: Path, point: str) -> None:
    """As above with a real kill: a worker process SIGKILLs itself at ``point`` (its open
    transaction dies with it, nothing unwinds), a worker in this process restarts."""
    chain = Chain.connect(anvil_url)
    deployment = chain.deploy()
    dep_file = tmp_path / "deployment.json"
    dep_file.write_text(deployment.to_json())
    settings = Settings(home=tmp_path, rpc_url=anvil_url, database_url=database_url,
                        deployment_file=dep_file, **PROMISE_SETTINGS)
    db = Database(database_url)
    services = build_services(settings, chain=chain, deployment=deployment, db=db)
    kept, pending = publish_open_promises(services, admit(chain, deployment,
                                                          "hospital.promise.kill"))
    env = {**os.environ, "CLAIMX_HOME": str(tmp_path), "CLAIMX_RPC_URL": anvil_url,
           "CLAIMX_DATABASE_URL": database_url, "CLAIMX_DEPLOYMENT_FILE": str(dep_file),
           **{f"CLAIMX_{k.upper()}": str(v) for k, v in PROMISE_SETTINGS.items()}}
    proc = subprocess.run([sys.executable, "-c", KILL_AT, point], env=env, timeout=120,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    restart_and_check(settings, chain, deployment, db, point, kept, pending, late=False)
