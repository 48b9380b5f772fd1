"""The watch folder with the formats of issue 13 item 7, through the real intake and SQLite
outbox (no gateway needed: publishing is tests/connect/test_fhir_watch.py's and
test_publisher.py's): a JSON 2301 bill and a Synthea Bundle (Claim, ExplanationOfBenefit,
DocumentReference, Encounter) are stored and moved to done/; a broken 2301 bill goes to failed/
with its located error."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.connect.intake import Intake
from gateway.connect.outbox import Outbox
from gateway.connect.watch import Watcher
from gateway.core.keys import SigningKey
from gateway.core.types import hex32, member_id
from tests.support import ASSETS


def _kinds(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        table = next(t for t in tables if "kind" in {c[1] for c in conn.execute(
            f"PRAGMA table_info({t})")})
        return sorted(r[0] for r in conn.execute(f"SELECT kind FROM {table}"))  # noqa: S608


def test_2301_json_and_synthea_bundle_are_published_broken_bill_is_failed(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    box = Outbox(tmp_path / "outbox.db")
    stored: list[int] = []
    watcher = Watcher(inbox, Intake(box, SigningKey.generate(), hex32(member_id("hospital.dev"))),
                      lambda: stored.append(1), settle=0.0, interval=0.25)
    for d in (watcher.done, watcher.failed):
        d.mkdir()
    (inbox / "fee_2301.json").write_bytes((ASSETS / "nhsa" / "fee_detail_2301_request.json")
                                          .read_bytes())
    (inbox / "synthea.json").write_bytes((ASSETS / "fhir" / "synthea" /
                                          "synthea_encounter_subset.json").read_bytes())
    broken = json.loads((ASSETS / "nhsa" / "fee_detail_2301_request.json").read_bytes())
    broken["input"]["feedetail"][1]["pric"] = "5O.00"
    (inbox / "broken_2301.json").write_text(json.dumps(broken, ensure_ascii=False))
    watcher.scan()
    watcher.scan()  # taken once unchanged for a poll
    assert sorted(p.name for p in watcher.done.iterdir()) == ["fee_2301.json", "synthea.json"]
    assert sorted(p.name for p in watcher.failed.iterdir()) == [
        "broken_2301.json", "broken_2301.json.error.txt"]
    reason = (watcher.failed / "broken_2301.json.error.txt").read_text(encoding="utf-8")
    assert "bad_decimal" in reason and "input.feedetail[1].pric" in reason
    assert "5O.00" not in reason
    assert len(stored) == 2 and watcher.counts == {"done": 2, "failed": 1}
    box.close()
    assert _kinds(tmp_path / "outbox.db") == [
        "attachment", "hospital.discharge_summary", "hospital.invoice", "hospital.invoice",
        "payer.adjudication"]
