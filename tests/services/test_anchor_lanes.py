"""The green channel's lanes: an urgent record does not wait behind a routine batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import gateway.services.anchor as anchor
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.tables import Record
from tests.support import Institution, admit


def publish(sv: Services, inst: Institution, n: int, tag: str, *, urgent: bool = False) -> None:
    sv.publisher.publish([sign_packet(new_packet(
        kind="hospital.lab_report", issuer=inst.issuer, subject="ee" * 32,
        body={"n": i, "tag": tag}, urgent=urgent), inst.key).to_json() for i in range(n)])


def leaves(sv: Services, urgent: bool) -> list[int | None]:
    with sv.db.session() as s:
        return list(s.scalars(select(Record.leaf_index).where(Record.urgent.is_(urgent))
                              .order_by(Record.id)))


def services(chain: Chain, tmp_path: Path, **settings: object) -> Services:
    return build_services(Settings(home=tmp_path, anchor_interval_seconds=3600, **settings),
                          chain=chain, deployment=chain.deploy(),
                          db=Database(f"sqlite:///{tmp_path / 'lanes.db'}"))


def test_urgent_lane_skips_a_long_routine_queue(embedded_chain: Chain, tmp_path: Path) -> None:
    """Past RIDE_ALONG routine records waiting, an urgent cycle sequences the urgent record
    alone (leaf 0, anchored); the routine ones keep waiting for their interval."""
    sv = services(embedded_chain, tmp_path, anchor_batch_max=10_000)
    hospital = admit(embedded_chain, sv.deployment, "hospital.lanes")
    publish(sv, hospital, anchor.RIDE_ALONG + 5, "routine")
    assert sv.worker.plan() is None
    publish(sv, hospital, 1, "urgent", urgent=True)
    assert sv.worker.plan() == "urgent"
    result = sv.worker.cycle(urgent_only=True)
    assert (result.sequenced, result.anchored_size) == (1, 1)
    assert leaves(sv, urgent=True) == [0]
    assert set(leaves(sv, urgent=False)) == {None}
    assert sv.worker.plan() is None  # routine records: the interval or a full batch


def test_few_routine_records_ride_along(embedded_chain: Chain, tmp_path: Path) -> None:
    sv = services(embedded_chain, tmp_path, anchor_batch_max=10_000)
    hospital = admit(embedded_chain, sv.deployment, "hospital.ride")
    publish(sv, hospital, 3, "routine")
    publish(sv, hospital, 1, "urgent", urgent=True)
    assert sv.worker.plan() == "anchor"
    assert sv.worker.cycle().anchored_size == 4


def test_routine_batch_anchors_early_for_an_urgent_record(
        embedded_chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the green channel is in use a routine batch is sequenced a chunk at a time; an
    urgent record arriving after the first chunk is sequenced next and anchored with it, and
    the rest of the batch is due at once, not after the routine interval."""
    monkeypatch.setattr(anchor, "CHUNK", 10)
    monkeypatch.setattr(anchor, "RIDE_ALONG", 5)
    arrived: list[str] = []

    def urgent_arrives(point: str) -> None:
        if point == "after_sequence" and not arrived:
            arrived.append(point)
            publish(sv, hospital, 1, "mid-batch", urgent=True)

    sv = services(embedded_chain, tmp_path, anchor_batch_max=30)
    hospital = admit(embedded_chain, sv.deployment, "hospital.chunks")
    publish(sv, hospital, 1, "first", urgent=True)
    publish(sv, hospital, 30, "routine")
    assert sv.worker.plan() == "urgent"  # and the green channel counts as in use
    assert sv.worker.cycle(urgent_only=True).anchored_size == 1
    sv.worker.fault = urgent_arrives
    result = sv.worker.cycle()
    assert (result.sequenced, result.anchored_size) == (11, 12)
    assert leaves(sv, urgent=True) == [0, 11]
    assert sv.worker.plan() == "anchor"  # the rest of the batch
    assert sv.worker.cycle().anchored_size == 32
    assert sorted(leaves(sv, urgent=False)) == list(range(1, 11)) + list(range(12, 32))
