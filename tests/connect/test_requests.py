"""Evidence requests reach the institution: `claimx connect` follows the hospital's event
stream from a real `claimx serve` and runs the configured command once per `request.opened`,
the event JSON on its stdin, resuming after a restart without repeating one."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests import flow_support
from tests.connect.support import run_agent, wait_for
from tests.support import Served, serve_gateway

pytestmark = pytest.mark.slow
RECORDER = ("import sys\nwith open(sys.argv[1], 'ab') as f:\n"
            "    f.write(sys.stdin.buffer.read() + b'\\n')\n")


def _request(served: Served) -> str:
    members, flow = served.members, flow_support
    claimant = ed25519.Ed25519PrivateKey.generate()
    bound = httpx.post(f"{served.url}/v1/records", headers=served.auth("hospital.dev"),
                       json=flow._binding(members, "hospital.dev", claimant), timeout=30)
    assert bound.status_code == 201, bound.text  # the hospital binds the claimant's key
    claim = httpx.post(f"{served.url}/v1/claims", headers=served.auth("insurer.dev"),
                       json=flow._claim(members, claimant), timeout=30)
    assert claim.status_code == 201, claim.text
    req = httpx.post(f"{served.url}/v1/claims/{claim.json()['id']}/requests",
                     headers=served.auth("insurer.dev"), timeout=30,
                     json={"institution": members["hospital.dev"]["member_id"],
                           "kinds": ["hospital.invoice"]})
    assert req.status_code == 201, req.text
    return str(claim.json()["id"])


def _seen(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_each_request_runs_the_command_once_across_a_restart(tmp_path: Path) -> None:
    script, out = tmp_path / "recorder.py", tmp_path / "requests.jsonl"
    script.write_text(RECORDER)
    extra = ["--on-request", shlex.join([sys.executable, str(script), str(out)])]
    (tmp_path / "gw").mkdir()
    with serve_gateway(tmp_path / "gw") as served:
        agent_dir = tmp_path / "agent"
        with run_agent(agent_dir, served, extra=extra) as agent:
            first = _request(served)
            wait_for(lambda: len(_seen(out)) == 1, 30, "the first request's command")
            assert "evidence request opened" in agent.log_text()
        with run_agent(agent_dir, served, extra=extra, name="connect2"):
            second = _request(served)
            wait_for(lambda: len(_seen(out)) >= 2, 30, "the second request's command")
    seen = _seen(out)
    assert [e["claim_id"] for e in seen] == [first, second]
    assert all(e["type"] == "request.opened" for e in seen)
