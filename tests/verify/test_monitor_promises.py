"""The monitor's promise check: a record withheld past its promise's merge delay is caught;
a record anchored in time, or a promise extended by a signed extension, is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.core.promise import Promise, sign
from gateway.verify.audit import http_fetch
from gateway.verify.promises import PromiseWatch, read_promises
from tests.support import advance_time
from tests.verify.conftest import MERGE_DELAY, World

pytestmark = pytest.mark.slow


def test_withheld_record_is_a_broken_promise(world: World, tmp_path: Path) -> None:
    w = world
    kept = w.publish_answer(n=1)
    w.services.worker.cycle()  # anchored in time
    withheld = w.publish_answer(n=2)  # the exchange never logs it
    folder = tmp_path / "promises"
    folder.mkdir()
    for answer in (kept, withheld):
        (folder / f"{answer['digest']}.json").write_text(json.dumps(answer["promise"]))
    promises = read_promises(folder)
    assert {p.digest for p in promises} == {kept["digest"], withheld["digest"]}

    watch = PromiseWatch(promises, http_fetch(w.client))
    mon = w.monitor()
    mon.checks.append(watch)
    assert mon.poll() == []  # both open or kept: within the merge delay
    assert mon.progress.open_promises == 1
    advance_time(w.chain, MERGE_DELAY + 5)
    [found] = mon.poll()
    assert found.code == "broken_promise" and withheld["digest"] in found.message
    assert list(watch.settled.values()) == ["KEPT"]
    # without the gateway (it shows nothing) the saved promise alone says the same
    alone = w.monitor(fetch=None)
    alone.fetch = None
    alone.checks.append(PromiseWatch(read_promises(folder), None))
    assert [f.code for f in alone.poll()] == ["broken_promise", "broken_promise"]


def test_promises_of_both_versions_are_followed(world: World, tmp_path: Path) -> None:
    """A promise/1 kept from before promise batches is read and decided like a promise/2."""
    w = world
    answer = w.publish_answer(n=5)
    given = Promise.model_validate(answer["promise"])
    assert given.version == "claimx.promise/2"
    desk = w.services.promises
    v1 = sign(Promise, desk.key, desk.member_id, chain=given.chain, digest=given.digest,
              issuer=given.issuer, key_id=given.key_id, urgent=given.urgent,
              accepted_at=given.accepted_at, merge_delay=given.merge_delay)
    (tmp_path / "v1.json").write_text(v1.to_json())
    (tmp_path / "v2.json").write_text(json.dumps(answer["promise"]))
    promises = read_promises(tmp_path)
    assert sorted(p.version for p in promises) == ["claimx.promise/1", "claimx.promise/2"]
    watch = PromiseWatch(promises, http_fetch(w.client))
    mon = w.monitor()
    mon.checks.append(watch)
    w.services.worker.cycle()
    assert mon.poll() == []
    assert sorted(watch.settled.values()) == ["KEPT", "KEPT"] and not watch.open


def test_a_forged_promise_is_invalid(world: World, tmp_path: Path) -> None:
    w = world
    answer = w.publish_answer(n=3)
    forged = dict(answer["promise"], merge_delay=10**6)  # a later deadline, same signature
    (tmp_path / "p.json").write_text(json.dumps(forged))
    mon = w.monitor()
    mon.checks.append(PromiseWatch(read_promises(tmp_path / "p.json"), http_fetch(w.client)))
    [found] = mon.poll()
    assert found.code == "invalid_promise"


def test_promises_and_published_digests_from_the_connect_outbox(world: World,
                                                               tmp_path: Path) -> None:
    """The agent's own outbox (gateway.connect.outbox) is what the monitor reads, read only."""
    from gateway.connect.outbox import Outbox, Record
    from gateway.verify.profile import read_published

    w = world
    answer = w.publish_answer(n=4)
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.add("file:bill.csv", "watch", [Record(answer["digest"], "hospital.invoice", {})])
    [item] = outbox.due(10, now=10**10)
    outbox.mark_sent([(item.id, answer)])
    outbox.close()
    assert read_published(tmp_path / "outbox.db") == {bytes.fromhex(answer["digest"])}
    [promise] = read_promises(tmp_path / "outbox.db")
    assert promise.digest == answer["digest"]
    p = w.profile()
    p.add_published(tmp_path / "outbox.db")
    mon = w.monitor(p)
    mon.checks.append(PromiseWatch([promise], http_fetch(w.client)))
    w.services.worker.cycle()
    assert mon.poll() == []  # published by us, anchored in time: nothing to report
