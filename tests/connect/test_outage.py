"""`claimx connect` under failure, with real processes: the gateway stopped and started
mid-stream, the agent killed with SIGKILL mid-stream. Nothing acknowledged is lost and nothing
reaches the log twice (the log grows by exactly one leaf per distinct message)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.connect.support import log_size, run_agent, segments, wait_for
from tests.support import CLAIMX, Served, free_port, serve_env, serve_gateway

pytestmark = pytest.mark.slow
TEMPLATE = ("MSH|^~\\&|HIS|RJH|CLAIMX|PICC|20240305160000+0800||ADT^A01|{cid}|P|2.5.1|||||CHN|"
            "UNICODE UTF-8\rEVN|A01|20240305155900\r"
            "PID|1||310115197506150028^^^RJH^RI||WANG^FANG||19750615|F\r"
            "PV1|1|I|0302^08^01^RJH|R|||D0421^CHEN^JING|||GS||||||||V{cid}|||||||||||||||||"
            "01||||||||20240305150000\r")


def message(cid: str) -> bytes:
    return TEMPLATE.format(cid=cid).encode()


@contextmanager
def persistent_gateway(tmp_path: Path, anvil_url: str, port: int,
                       first: bool) -> Iterator[Served]:
    """A gateway on anvil and SQLite in ``tmp_path`` that keeps its state across restarts."""
    deployment = tmp_path / "deployment.json"
    if first:
        subprocess.run([*CLAIMX, "deploy", "--rpc-url", anvil_url, "--out", str(deployment)],
                       check=True, capture_output=True, env=serve_env(tmp_path))
    args = ["--rpc-url", anvil_url, "--deployment", str(deployment)]
    with serve_gateway(tmp_path, args, dev_members=first, port=port) as served:
        served.members_file = tmp_path / "dev" / "members.json"
        yield served


def _send_all(agent_port: int, cids: list[str], acks: dict[str, bytes]) -> None:
    """Send as an integration engine does, one after another; stop at the first failure."""
    from hl7.client import MLLPClient

    try:
        with MLLPClient("127.0.0.1", agent_port) as client:
            client.socket.settimeout(20)
            for cid in cids:
                ack = client.send_message(message(cid))
                if not ack:
                    return
                acks[cid] = ack.strip(b"\x0b\x1c\r")
    except OSError:
        return


def _on_log(served: Served, digest: str) -> bool:
    r = httpx.get(f"{served.url}/v1/records/{digest}", headers=served.auth("hospital.dev"),
                  timeout=10)
    return r.status_code == 200


def test_gateway_stopped_and_started_mid_stream(tmp_path: Path, anvil_url: str) -> None:
    port = free_port()
    gw_dir = tmp_path / "gw"
    acks: dict[str, bytes] = {}
    with persistent_gateway(gw_dir, anvil_url, port, first=True) as served:
        start = log_size(served)
        with run_agent(tmp_path / "agent", served) as agent:
            _send_all(agent.mllp, [f"UP{i}" for i in range(10)], acks)
            # the gateway crashes mid-stream (SIGTERM would wait for the agent's event stream)
            served.proc.kill()
            served.proc.wait(20)
            _send_all(agent.mllp, [f"DOWN{i}" for i in range(10)], acks)
            assert len(acks) == 20
            assert all(segments(a)["MSA"][0][1] == "AA" for a in acks.values())
            wait_for(lambda: agent.status()["queued"] > 0, 20, "items waiting for the gateway")
            with persistent_gateway(gw_dir, anvil_url, port, first=False) as again:
                _send_all(agent.mllp, ["UP0", "DOWN0"], acks)  # re-sent: no new records
                wait_for(lambda: agent.status()["queued"] == 0, 90, "the outbox drained")
                status = agent.status()
                assert status["sent"] == 20 and status["failed"] == 0, status
                wait_for(lambda: log_size(again) >= start + 20, 60, "the records anchored")
                time.sleep(2)
                assert log_size(again) == start + 20
                digests = [segments(a)["ZCX"][0][2] for a in acks.values()]
                assert len(set(digests)) == 20
                assert all(_on_log(again, d) for d in digests)


def test_agent_killed_mid_stream_loses_no_acknowledged_message(tmp_path: Path,
                                                               anvil_url: str) -> None:
    port = free_port()
    cids = [f"K{i}" for i in range(60)]
    acks: dict[str, bytes] = {}
    with persistent_gateway(tmp_path / "gw", anvil_url, port, first=True) as served:
        start = log_size(served)
        agent_dir = tmp_path / "agent"
        with run_agent(agent_dir, served) as agent:
            ports = (agent.mllp, agent.fhir)
            sender = threading.Thread(target=_send_all, args=(agent.mllp, cids, acks))
            sender.start()
            wait_for(lambda: len(acks) >= 15, 60, "the first acknowledgements")
            os.kill(agent.proc.pid, signal.SIGKILL)
            agent.proc.wait(10)
            sender.join(30)
        acked_before = dict(acks)
        assert 15 <= len(acked_before) < len(cids)
        with run_agent(agent_dir, served, ports=ports, name="connect2") as agent:
            _send_all(agent.mllp, cids, acks)  # the engine re-sends from the first unacked
            assert len(acks) == len(cids)
            for cid, ack in acked_before.items():  # answered as first acknowledged
                assert segments(acks[cid])["ZCX"] == segments(ack)["ZCX"]
            wait_for(lambda: agent.status()["queued"] == 0, 90, "the outbox drained")
            assert agent.status()["sent"] == len(cids)
            wait_for(lambda: log_size(served) >= start + len(cids), 60, "the records anchored")
            time.sleep(2)
            assert log_size(served) == start + len(cids)
            assert all(_on_log(served, segments(a)["ZCX"][0][2]) for a in acks.values())
