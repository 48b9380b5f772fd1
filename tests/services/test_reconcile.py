"""At start the database's anchors are made a prefix of the chain's heads: a local node that
lost its last second of blocks gets them anchored again; any other mismatch is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.errors import ChainError
from gateway.services.anchor import AnchorWorker
from gateway.services.wiring import Services, build_services
from gateway.store.tables import Anchor
from tests.services.anchor_support import publish
from tests.support import admit


def two_anchors(chain: Chain, tmp_path: Path) -> tuple[Services, list[tuple[int, bytes, int,
                                                                            bytes]]]:
    deployment = chain.deploy()
    sv = build_services(Settings(home=tmp_path), chain=chain, deployment=deployment)
    hospital = admit(chain, deployment, "hospital.lost")
    for n in (3, 2):
        publish(sv, hospital, n)
        sv.worker.cycle()
    with sv.db.session() as s:
        rows = [(a.size, a.root, a.block_number, a.tx_hash)
                for a in s.scalars(select(Anchor).order_by(Anchor.size))]
    assert [r[0] for r in rows] == [3, 5]
    return sv, rows


def restored_worker(chain: Chain, sv: Services, heads: list[tuple[int, bytes]]) -> AnchorWorker:
    """A worker on contracts holding ``heads``: the chain as a dump restored it."""
    d = chain.deploy()
    log = chain.evidence_log(d.log)
    for size, root in heads:
        log.anchor(size, root, [])
    return AnchorWorker(sv.db, log, sv.settings, sender=d.admin)


def test_anchors_in_lost_blocks_are_dropped_and_anchored_again(embedded_chain: Chain,
                                                               tmp_path: Path) -> None:
    sv, [(size1, root1, _, _), (size2, root2, block2, tx2)] = two_anchors(embedded_chain,
                                                                         tmp_path)
    worker = restored_worker(embedded_chain, sv, [(size1, root1)])
    with pytest.raises(ChainError) as refused:  # not our own node: nothing is dropped
        worker.reconcile()
    assert refused.value.code == "log_fork" and "do not belong together" in refused.value.msg
    assert worker.reconcile(chain_tip=block2 - 1) == 1
    worker.cycle()  # the leaves stayed: anchored again on top of the chain's last head
    head = worker.chain.latest_head()
    assert head is not None and (head.index, head.size, head.root) == (1, size2, root2)
    with sv.db.session() as s:
        again = s.scalar(select(Anchor).where(Anchor.size == size2))
        assert again is not None and again.tx_hash != tx2 and again.head_index == 1


def test_anchor_not_in_lost_blocks_is_refused(embedded_chain: Chain, tmp_path: Path) -> None:
    sv, [(size1, root1, _, _), (_, _, block2, _)] = two_anchors(embedded_chain, tmp_path)
    worker = restored_worker(embedded_chain, sv, [(size1, root1)])
    with pytest.raises(ChainError, match="not on this chain"):  # mined before the tip: a fork
        worker.reconcile(chain_tip=block2)


def test_a_different_head_on_chain_is_refused(embedded_chain: Chain, tmp_path: Path) -> None:
    sv, [(size1, _, _, _), (_, _, block2, _)] = two_anchors(embedded_chain, tmp_path)
    worker = restored_worker(embedded_chain, sv, [(size1, b"\x01" * 32)])
    with pytest.raises(ChainError, match="is not head 0"):
        worker.reconcile(chain_tip=block2 - 1)
    with sv.db.session() as s:  # refused before anything was dropped
        assert len(s.scalars(select(Anchor)).all()) == 2
