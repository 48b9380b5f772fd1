"""A chain outage against a real anvil (frozen with SIGSTOP): the anchor worker cannot anchor,
so it extends the open promises by signed, visible extensions before their deadlines pass,
and once the chain is back the records are anchored and the promises verify as kept."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.dev.node import LocalNode
from gateway.services.promises import promise_bundle
from gateway.services.wiring import build_services
from gateway.store.db import Database
from gateway.store.tables import Event
from gateway.verify.promise import verify_promise
from tests.support import admit

pytestmark = pytest.mark.slow


def wait_for(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {within} s"
        time.sleep(0.2)


def test_chain_outage_extends_open_promises_and_they_are_kept(tmp_path: Path) -> None:
    node = LocalNode(tmp_path / "node")
    url = node.start()
    assert node.proc is not None
    try:
        chain = Chain.connect(url, timeout=0.5)
        deployment = chain.deploy()
        settings = Settings(home=tmp_path, merge_delay_seconds=4, anchor_interval_seconds=0.5,
                            urgent_poll_seconds=0.1, chain_timeout_seconds=0.5)
        sv = build_services(settings, chain=chain, deployment=deployment,
                            db=Database(f"sqlite:///{tmp_path / 'claimx.db'}"))
        hospital = admit(chain, deployment, "hospital.outage")
        packet = new_packet(kind="hospital.lab_report", issuer=hospital.issuer,
                            subject="cd" * 32, body={"n": 1})
        accepted = sv.publisher.publish([sign_packet(packet, hospital.key).to_json()],
                                        hospital.id)[0]
        assert accepted.promise is not None
        original = accepted.promise.deadline

        def bundle():  # type: ignore[no-untyped-def]
            with sv.db.session() as s:
                return promise_bundle(s, accepted.digest, sv.cache, now=sv.promises.clock())

        node.proc.send_signal(signal.SIGSTOP)  # the chain stops answering
        sv.worker.start()
        try:
            wait_for(lambda: bundle().extensions, 10, "an extension")
            wait_for(lambda: time.time() > original + 1, 10, "the original deadline")
            during = bundle()
            assert during.state == "open" and during.deadline > original
            ext = during.extensions[0]
            assert ext.reason == "chain_unavailable" and ext.extended_at <= original
            with sv.db.session() as s:  # visible: the publisher is told
                told = [json.loads(e.data) for e in s.scalars(select(Event).where(
                    Event.member_id == hospital.id, Event.type == "promise.extended"))]
            assert told and told[0]["digest"] == accepted.digest.hex()
            node.proc.send_signal(signal.SIGCONT)  # the chain is back: anchoring resumes
            wait_for(lambda: bundle().inclusion is not None, 30, "anchoring after the outage")
        finally:
            sv.worker.stop()
        after = bundle()
        assert after.state == "kept"
        now = max(int(time.time()), chain.now())
        report = verify_promise(after, chain, deployment.log, now=now)
        assert report.verdict == "KEPT", report.to_dict()
        # without its extensions the same inclusion is late: the extension is what kept it
        bare = after.model_copy(update={"extensions": []})
        assert verify_promise(bare, chain, deployment.log, now=now).verdict == "BROKEN"
    finally:
        node.proc.send_signal(signal.SIGCONT)
        node.stop()
