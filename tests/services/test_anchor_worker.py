"""The anchor worker is crash-safe: killed anywhere, it loses nothing and appends nothing twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.services.wiring import build_services
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB
from gateway.store.tables import Anchor, Record
from tests.services.anchor_support import publish
from tests.support import admit


class Crash(BaseException):
    """Stands for the process dying: nothing after the crash point runs."""


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

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    crashing = build_services(settings, chain=chain, deployment=deployment, db=db).worker
    crashing.fault = crash
    with pytest.raises(Crash):
        crashing.cycle()

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
