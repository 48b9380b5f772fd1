"""scripts/drill.py: the operators' outage drill runs, tells the truth, and exits by it.

The slow test runs two scenarios that recover today against a deployment the script starts
(anvil, a PostgreSQL cluster of its own, `serve --no-worker`, a separate worker) and reads
the figures from its JSON line. The quick ones check its verdicts and its usage errors
without starting anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from tests.support import ANVIL, ROOT

DRILL = ROOT / "scripts" / "drill.py"
sys.path.insert(0, str(ROOT / "scripts"))

from drillkit.checks import Findings  # noqa: E402
from drillkit.load import Tally  # noqa: E402
from drillkit.report import figures, ok  # noqa: E402
from drillkit.scenarios import SCENARIOS, Result, _judge  # noqa: E402
from drillkit.target import ForeignTarget  # noqa: E402


def drill(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRILL), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.timeout(900)
@pytest.mark.skipif(not ANVIL.exists(), reason="anvil missing: run `npm ci`")
@pytest.mark.skipif(shutil.which("pg_createcluster") is None,
                    reason="pg_createcluster missing: install postgresql-common")
def test_worker_killed_and_database_stopped_lose_nothing() -> None:
    run = drill("--scenario", "worker-killed", "--scenario", "database-stopped",
                "--duration", "12", "--rate", "4", "--seed", "7", "--json", timeout=840)
    assert run.stdout.strip(), run.stderr[-3000:]
    line = json.loads(run.stdout.strip().splitlines()[-1])
    by_name = {s["scenario"]: s for s in line["drill"]}
    assert set(by_name) == {"worker-killed", "database-stopped"}
    for s in by_name.values():
        assert s["verdict"] == "pass", (s, run.stderr[-3000:])
        assert s["requests"] >= 40 and s["accepted"] > 0
        assert (s["lost"], s["duplicated"], s["unanchored"]) == (0, 0, 0)
        assert (s["other_5xx"], s["hangs"]) == (0, 0)
        assert s["heads_match"] is True and s["recovery_s"] is not None
        assert s["worst_latency_s"] < 5
    # the database was really down: the gateway said so with 503s, and nothing else
    stopped = by_name["database-stopped"]["statuses"]
    assert stopped.get("503 database_unavailable", 0) > 0, stopped
    assert set(stopped) <= {"201", "503 database_unavailable"}, stopped
    assert "worker killed (SIGKILL" in run.stderr
    assert line["ok"] is True and run.returncode == 0
    assert "claimx drill" in run.stdout  # the table, before the JSON line


def _result(**found: int) -> Result:
    r = Result("node-restored", tally=Tally(requests=10, accepted=8, statuses=Counter(
        {"201": 8, "503 chain_unavailable": 2})), recovery=3.0)
    r.findings = Findings(checked=8, lost=found.get("lost", 0),
                          duplicated=found.get("duplicated", 0),
                          unanchored=found.get("unanchored", 0), heads_match=True)
    return r


@pytest.mark.parametrize(("found", "reason"), [
    ({"lost": 1}, "1 accepted record(s) lost"),
    ({"duplicated": 2}, "2 record(s) duplicated in the log"),
    ({"unanchored": 3}, "3 record(s) not anchored in a head the chain holds"),
])
def test_a_lost_duplicated_or_unanchored_record_fails_the_scenario(
        found: dict[str, int], reason: str) -> None:
    r = _result(**found)
    _judge(r, ForeignTarget.__new__(ForeignTarget), SCENARIOS["node-restored"])
    assert r.verdict == "FAIL" and reason in r.reasons
    assert any("branch fence" in x for x in r.reasons)  # says what it depends on
    assert not ok([r]) and figures(r)["verdict"] == "FAIL"


def test_5xx_hangs_and_mismatched_heads_fail_and_503s_do_not() -> None:
    clean = _result()
    _judge(clean, ForeignTarget.__new__(ForeignTarget), SCENARIOS["node-paused"])
    assert clean.verdict == "pass" and ok([clean])  # 503s are the honest answer
    bad = _result()
    bad.tally.other_5xx, bad.tally.hangs, bad.findings.heads_match = 1, 2, False
    _judge(bad, ForeignTarget.__new__(ForeignTarget), SCENARIOS["node-paused"])
    assert bad.verdict == "FAIL"
    assert {"1 5xx answer(s) other than 503", "2 request(s) hung over 5 s",
            "chain heads differ from the gateway's anchors"} <= set(bad.reasons)


def test_usage_errors_exit_2_and_help_teaches() -> None:
    assert drill("--duration", "10").returncode == 2  # no scenario named
    run = drill("--scenario", "node-paused", "--gateway", "http://127.0.0.1:1")
    assert run.returncode == 2 and "--token" in run.stderr
    text = drill("--help").stdout
    for name in SCENARIOS:
        assert name in text
    assert "--node-pause-cmd" in text and "exit status" in text
