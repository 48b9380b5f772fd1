"""Starting a real `claimx connect` next to a real `claimx serve`, and talking MLLP to it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hl7.client import MLLPClient

from tests.support import CLAIMX, Served, free_port, serve_env


@dataclass
class Connected:
    """A running `claimx connect`: its process, ports, outbox and log."""

    proc: subprocess.Popen[bytes]
    mllp: int
    fhir: int
    outbox: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, message: bytes, timeout: float = 30) -> bytes:
        """One message over MLLP with python-hl7's client; the ACK, framing stripped."""
        with MLLPClient("127.0.0.1", self.mllp) as client:
            client.socket.settimeout(timeout)
            ack = client.send_message(message)
        return ack.strip(b"\x0b\x1c\r")

    def status(self) -> dict[str, object]:
        import json

        out = subprocess.run([*CLAIMX, "connect", "status", "--outbox", str(self.outbox)],
                             capture_output=True, check=True, env=serve_env(self.outbox.parent))
        return json.loads(out.stdout)  # type: ignore[no-any-return]


def agent_cmd(served: Served, outbox: Path, mllp: int, fhir: int, watch: Path | None,
              extra: Sequence[str], key: Path | None = None) -> list[str]:
    member = served.members["hospital.dev"]
    cmd = [*CLAIMX, "connect", "--gateway", served.url, "--issuer", "hospital.dev",
           "--key", str(key or member["key_file"]), "--outbox", str(outbox),
           "--mllp", f"127.0.0.1:{mllp}", "--fhir", f"127.0.0.1:{fhir}", *extra]
    if watch is not None:
        cmd += ["--watch", str(watch), "--settle", "0.5"]
    return cmd


@contextmanager
def run_agent(tmp_path: Path, served: Served, *, watch: Path | None = None,
              extra: Sequence[str] = (), ports: tuple[int, int] | None = None,
              name: str = "connect", key: Path | None = None) -> Iterator[Connected]:
    """`claimx connect` with MLLP and FHIR on free ports (or ``ports``), stopped afterwards."""
    mllp, fhir = ports or (free_port(), free_port())
    outbox = tmp_path / "outbox.db"
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"{name}.log"
    env = serve_env(tmp_path, {"CLAIMX_TOKEN": served.members["hospital.dev"]["token"]})
    with log.open("ab") as out:
        proc = subprocess.Popen(agent_cmd(served, outbox, mllp, fhir, watch, extra, key), env=env,
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    agent = Connected(proc, mllp, fhir, outbox, log)
    try:
        _wait_listening(agent)
        yield agent
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _wait_listening(agent: Connected, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", agent.mllp), timeout=1):
                pass
            httpx.get(f"http://127.0.0.1:{agent.fhir}/metadata", timeout=2)
            return
        except (OSError, httpx.TransportError):
            pass
        if agent.proc.poll() is not None:
            pytest.fail(f"claimx connect exited ({agent.proc.returncode}):\n{agent.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"claimx connect did not listen within {timeout} s:\n{agent.log_text()}")
        time.sleep(0.2)


def log_size(served: Served) -> int:
    r = httpx.get(served.url + "/v1/log/head", headers=served.auth("auditor.dev"), timeout=10)
    r.raise_for_status()
    return int(r.json()["log_size"])


def wait_for(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {within} s"
        time.sleep(0.2)


def segments(ack: bytes, codec: str = "utf-8") -> dict[str, list[list[str]]]:
    """ACK segments by name, each split into fields (MSH-1 not counted)."""
    out: dict[str, list[list[str]]] = {}
    for seg in ack.decode(codec).split("\r"):
        if seg:
            out.setdefault(seg[:3], []).append(seg.split("|"))
    return out
