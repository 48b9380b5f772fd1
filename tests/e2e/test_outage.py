"""Outages against real processes: a frozen anvil (SIGSTOP) and a stopped PostgreSQL cluster.

The gateway must keep serving what it can, say honestly what it cannot (503 with
Retry-After, never a 403, a 500 or a hang) and recover by itself once the dependency is back.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.chain.client import Chain
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.types import member_id
from tests.support import Served, own_anvil, own_pg_cluster, pg_ctl, serve_gateway

pytestmark = pytest.mark.slow


def envelope(slug: str, kind: str, key: SigningKey, **body: Any) -> dict[str, Any]:
    from gateway.core.types import hex32

    packet = new_packet(kind=kind, issuer=hex32(member_id(slug)), subject="cd" * 32, body=body)
    return sign_packet(packet, key).to_json()


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = fn(*args, **kwargs)
    return r, time.monotonic() - start


def wait_until(check: Any, within: float, what: str) -> float:
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        assert time.monotonic() - start < within, f"{what} not within {within} s"
        time.sleep(0.2)


def assert_unavailable(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == code, r.text
    assert int(r.headers["retry-after"]) >= 1


def test_frozen_chain_reads_stale_publishes_honest_503_and_recovery(tmp_path: Path) -> None:
    with own_anvil() as anvil:
        url = anvil.url
        chain = Chain.connect(url)
        dep_file = tmp_path / "deployment.json"
        dep = chain.deploy()
        dep_file.write_text(dep.to_json())
        args = ["--rpc-url", url, "--deployment", str(dep_file)]
        env = {"CLAIMX_KEY_CACHE_SECONDS": "1"}  # answers expire at once: the grace path runs
        with serve_gateway(tmp_path, args, env=env) as gw:
            hosp = SigningKey.load(Path(gw.members["hospital.dev"]["key_file"]))
            police = SigningKey.load(Path(gw.members["police.dev"]["key_file"]))
            unseen_key = SigningKey.generate()  # registered, but never used before the outage
            operator = chain.add_local(Path(gw.members["hospital.dev"]["operator_key_file"])
                                       .read_text().strip())  # the hospital's own account
            chain.registry(dep.registry).register_key(member_id("hospital.dev"), unseen_key,
                                                      sender=operator)
            h, p = gw.auth("hospital.dev"), gw.auth("police.dev")
            first = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10,
                               json=envelope("hospital.dev", "hospital.invoice", hosp, total="1"))
            assert first.status_code == 201 and first.json()["key_status"] == "fresh", first.text
            assert httpx.get(f"{gw.url}/v1/log/head", headers=h, timeout=10).status_code == 200
            assert httpx.get(f"{gw.url}/readyz", timeout=10).status_code == 200
            time.sleep(1.2)  # the cached answers are now older than the ttl

            anvil.pause()
            stale_digest = _while_frozen(gw, h, p, hosp, police, unseen_key)

            anvil.resume()
            took = wait_until(lambda: httpx.get(f"{gw.url}/readyz", timeout=10).status_code
                              == 200, 10, "readiness after SIGCONT")
            assert took < 7.5  # within 5 s of the node answering, plus one breaker probe
            r = httpx.post(f"{gw.url}/v1/records", headers=p, timeout=10, json=envelope(
                "police.dev", "police.incident_report", police, case="A-1"))
            assert r.status_code == 201 and r.json()["key_status"] == "fresh", r.text
            r = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10, json=envelope(
                "hospital.dev", "hospital.invoice", unseen_key, total="3"))
            assert r.status_code == 201 and r.json()["key_status"] == "fresh", r.text
            ready = httpx.get(f"{gw.url}/readyz", timeout=10).json()
            assert ready["checks"]["chain"]["breaker"] == "closed"
            # nothing lost: the record accepted during the outage gets anchored
            wait_until(lambda: httpx.get(f"{gw.url}/v1/records/{stale_digest}", headers=h,
                                         timeout=10).json()["status"] == "anchored", 15,
                       "the outage's record anchored")
            assert "Traceback" not in gw.log_text()


def _while_frozen(gw: Served, h: dict[str, str], p: dict[str, str], hosp: SigningKey,
                  police: SigningKey, unseen_key: SigningKey) -> str:
    """Every check during the freeze; returns the digest published on a stale key."""
    r, took = timed(httpx.get, f"{gw.url}/healthz", timeout=5)
    assert r.status_code == 200 and took < 1
    # a database-only read: the member's last answer serves, in well under 5 s
    r, took = timed(httpx.get, f"{gw.url}/v1/log/head", headers=h, timeout=10)
    assert r.status_code == 200 and took < 5, (r.text, took)
    # a publish with the recently seen key is accepted and says its key status is stale
    r, took = timed(httpx.post, f"{gw.url}/v1/records", headers=h, timeout=10,
                    json=envelope("hospital.dev", "hospital.invoice", hosp, total="2"))
    assert r.status_code == 201 and r.json()["key_status"] == "stale", r.text
    assert took < 5
    stale_digest: str = r.json()["digest"]
    # nothing known about this member or that key: an honest 503, not a 403
    r, took = timed(httpx.post, f"{gw.url}/v1/records", headers=p, timeout=10,
                    json=envelope("police.dev", "police.incident_report", police, case="A-1"))
    assert_unavailable(r, "chain_unavailable")
    assert took < 5
    r = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10,
                   json=envelope("hospital.dev", "hospital.invoice", unseen_key, total="3"))
    assert_unavailable(r, "chain_unavailable")
    # a bad token is still a plain 401
    r = httpx.get(f"{gw.url}/v1/log/head", headers={"Authorization": "Bearer cx1_nope"},
                  timeout=5)
    assert r.status_code == 401
    # readiness names the chain
    r, took = timed(httpx.get, f"{gw.url}/readyz", timeout=10)
    assert r.status_code == 503 and took < 6, r.text
    body = r.json()
    assert body["failing"] == ["chain"] and body["checks"]["chain"]["breaker"] != "closed"
    assert body["checks"]["database"]["ok"] and "retry-after" in r.headers
    # 60 concurrent reads do not wedge the server: all answer, and /healthz stays quick
    with ThreadPoolExecutor(60) as pool:
        reads = [pool.submit(httpx.get, f"{gw.url}/v1/log/head", headers=h, timeout=15)
                 for _ in range(60)]
        r, took = timed(httpx.get, f"{gw.url}/healthz", timeout=5)
        assert r.status_code == 200 and took < 5  # was a time-out before: 40 threads stuck
        assert [f.result().status_code for f in reads] == [200] * 60
    return stale_digest


def test_database_down_is_503_and_recovers(tmp_path: Path) -> None:
    with own_pg_cluster(f"claimx_outage_{os.getpid()}") as (name, url):
        pg_ctl(name, "start")
        with serve_gateway(tmp_path, ["--database-url", url]) as gw:
            h = gw.auth("hospital.dev")
            hosp = SigningKey.load(Path(gw.members["hospital.dev"]["key_file"]))
            assert httpx.get(f"{gw.url}/v1/log/head", headers=h, timeout=10).status_code == 200
            proof = _anchored_proof_url(gw, h, hosp)
            pg_ctl(name, "stop")
            try:
                r, took = timed(httpx.get, f"{gw.url}/v1/log/head", headers=h, timeout=10)
                assert_unavailable(r, "database_unavailable")
                assert took < 5
                assert "psycopg" not in r.text and str(name) not in r.text
                for url in (proof, f"{gw.url}/v1/log/consistency?first=1&second=2"):
                    r, took = timed(httpx.get, url, headers=h, timeout=10)  # node reads
                    assert_unavailable(r, "database_unavailable")
                    assert took < 5
                refused = envelope("hospital.dev", "hospital.invoice", hosp, total="1")
                r = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10, json=refused)
                assert_unavailable(r, "database_unavailable")
                r = httpx.get(f"{gw.url}/readyz", timeout=10)
                assert r.status_code == 503 and r.json()["failing"] == ["database"], r.text
                assert httpx.get(f"{gw.url}/healthz", timeout=5).status_code == 200
            finally:
                pg_ctl(name, "start")
            wait_until(lambda: httpx.get(f"{gw.url}/v1/log/head", headers=h,
                                         timeout=10).status_code == 200, 10, "database back")
            assert httpx.get(f"{gw.url}/readyz", timeout=10).status_code == 200
            # the refused publish left nothing behind: the same envelope is new, and gets a
            # promise of its own that the gateway then serves (none was given during the 503)
            r = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10, json=refused)
            assert r.status_code == 201, r.text
            out = r.json()
            assert out["duplicate"] is False and out["promise"] is not None, r.text
            b = httpx.get(f"{gw.url}/v1/records/{out['digest']}/promise", headers=h, timeout=10)
            assert b.status_code == 200, b.text
            assert b.json()["promise"] == out["promise"], b.text
            assert b.json()["state"] in ("open", "kept"), b.text  # kept once the worker anchors
            assert "Traceback" not in gw.log_text()
            assert httpx.get(proof, headers=h, timeout=10).status_code == 200


def _anchored_proof_url(gw: Served, h: dict[str, str], hosp: SigningKey) -> str:
    """Publish two records, wait until both are anchored, and return the first one's proof
    URL, checked to answer 200 (so the outage is what a later 503 shows)."""
    digests = []
    for total in ("7", "8"):
        r = httpx.post(f"{gw.url}/v1/records", headers=h, timeout=10,
                       json=envelope("hospital.dev", "hospital.invoice", hosp, total=total))
        assert r.status_code == 201, r.text
        digests.append(r.json()["digest"])
    wait_until(lambda: all(httpx.get(f"{gw.url}/v1/records/{d}", headers=h, timeout=10)
                           .json()["status"] == "anchored" for d in digests), 20, "anchored")
    url = f"{gw.url}/v1/records/{digests[0]}/proof"
    assert httpx.get(url, headers=h, timeout=10).status_code == 200
    assert httpx.get(f"{gw.url}/v1/log/consistency?first=1&second=2", headers=h,
                     timeout=10).status_code == 200
    return url
