"""Waking another process's anchor worker through PostgreSQL (gateway.store.wakeup): two
gateways on one database, as `claimx serve --workers 2` runs them; the listener's connection
killed by the database."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.services.wiring import Services, build_services
from gateway.store import wakeup
from gateway.store.db import Database
from tests.support import Institution, admit, own_pg_cluster, pg_ctl

pytestmark = pytest.mark.postgres


def _gateway(tmp_path: Path, name: str, url: str, chain: Chain,
             deployment: Deployment) -> Services:
    # a long poll: only a notification can wake the worker within the test's waits
    return build_services(Settings(home=tmp_path / name, database_url=url,
                                   urgent_poll_seconds=60),
                          chain=chain, deployment=deployment)


def _record(inst: Institution, n: int, *, urgent: bool) -> dict[str, object]:
    return sign_packet(new_packet(kind="hospital.lab_report", issuer=inst.issuer,
                                  subject="ab" * 32, body={"n": n}, urgent=urgent),
                       inst.key).to_json()


def _woken(services: Services, seconds: float) -> bool:
    return services.worker.wake.wait(seconds)


def test_an_urgent_record_stored_by_one_process_wakes_the_others_worker(
        chain: Chain, deployment: Deployment, pg_url: str, tmp_path: Path) -> None:
    leader = _gateway(tmp_path, "leader", pg_url, chain, deployment)
    standby = _gateway(tmp_path, "standby", pg_url, chain, deployment)
    hospital = admit(chain, deployment, "hospital.wakeup")
    listener = leader.worker.listener
    assert listener is not None
    listener.start()
    try:
        assert listener.connected.wait(10), "the listener never connected"
        time.sleep(0.2)
        leader.worker.wake.clear()
        standby.publisher.publish([_record(hospital, 1, urgent=False)])
        assert not _woken(leader, 1.0), "a routine record woke the other process's worker"
        standby.publisher.publish([_record(hospital, 2, urgent=True)])
        assert _woken(leader, 5.0), "an urgent record did not wake the other process's worker"
    finally:
        listener.stop(wait=5)
        leader.db.engine.dispose()
        standby.db.engine.dispose()


def test_the_listener_reconnects_after_the_database_drops_it(
        chain: Chain, deployment: Deployment, pg_url: str, tmp_path: Path) -> None:
    """A database restart or an administrator's pg_terminate_backend: the listener
    reconnects, wakes the worker on reconnecting (a notification may have been missed) and
    carries notifications again."""
    leader = _gateway(tmp_path, "leader", pg_url, chain, deployment)
    listener = leader.worker.listener
    assert listener is not None
    listener.start()
    try:
        assert listener.connected.wait(10)
        first = listener.backend_pid
        with leader.db.engine.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": first}).scalar() is True
        _until(lambda: listener.backend_pid != first and listener.connected.is_set(), 15,
               "the listener did not reconnect")
        _assert_notified(leader, "no wake-up after the listener reconnected")
    finally:
        listener.stop(wait=5)
        leader.db.engine.dispose()


def test_the_listener_outlives_the_database_stopped_and_started(
        embedded_chain: Chain, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The whole server stopped (not one connection dropped): the listener keeps retrying
    without ending its thread, a wake-up sent meanwhile fails quietly (the publish it follows
    is already stored), and once the server is back the listener wakes the worker (it may
    have missed a notification) and carries notifications again."""
    with own_pg_cluster(f"claimx_wakeup_{os.getpid()}") as (name, url):
        pg_ctl(name, "start")
        leader = _gateway(tmp_path, "leader", url, embedded_chain, embedded_chain.deploy())
        listener = leader.worker.listener
        assert listener is not None
        listener.start()
        try:
            assert listener.connected.wait(10)
            first = listener.backend_pid
            pg_ctl(name, "stop")
            _until(lambda: not listener.connected.is_set(), 15, "the listener saw no outage")
            leader.db.engine.dispose()  # the pool's connections died with the server
            with caplog.at_level(logging.WARNING, logger="claimx.wakeup"):
                wakeup.notify(leader.db)  # must not raise
            assert "could not notify the anchor worker" in caplog.text
            time.sleep(1.5)  # a few failed reconnects: the thread must survive them
            assert listener.alive()
            leader.worker.wake.clear()
            pg_ctl(name, "start")
            _until(listener.connected.is_set, 20, "the listener did not reconnect")
            assert listener.backend_pid != first
            assert _woken(leader, 1.0), "reconnecting did not wake the worker"
            _assert_notified(leader, "no wake-up after the database came back")
        finally:
            listener.stop(wait=5)
            leader.db.engine.dispose()


def _assert_notified(leader: Services, why: str) -> None:
    """A notification now wakes ``leader``'s worker (once a wake-up on reconnecting passed)."""
    time.sleep(0.2)
    leader.worker.wake.clear()
    wakeup.notify(leader.db)
    assert _woken(leader, 5.0), why


def _until(check: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def test_sqlite_gateways_have_no_listener(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'one.db'}")
    assert not wakeup.supported(db)
    db.engine.dispose()
