"""End-to-end MLLP throughput: a real `claimx serve` and `claimx connect`, one MLLP connection.

Measures messages per second acknowledged (each ACK waits for the outbox commit) and messages
per second published (until the outbox has drained to the gateway). Used by
``scripts/bench_adapters.py --mllp N``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLAIMX = [sys.executable, "-m", "gateway.cli"]
MESSAGE = ("MSH|^~\\&|HIS|RJH|CLAIMX|PICC|20240305160000+0800||ADT^A03|B{n}|P|2.5.1\r"
           "PID|1||310115197506150028^^^RJH^RI||WANG^FANG||19750615|F\r"
           "PV1|1|I|0302^08^01^RJH|R|||D0421^CHEN^JING\rDG1|1||K80.101^gallstones^ICD-10\r")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if check():
                return
        except (OSError, httpx.TransportError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not within {within} s")
        time.sleep(0.2)


def bench_mllp(n: int) -> dict[str, Any]:
    """Send ``n`` ADT^A03 messages over one connection; rates for ACKs and publication."""
    from hl7.client import MLLPClient

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
        env |= {"CLAIMX_HOME": str(home / "home"), "PYTHONPATH": str(ROOT)}
        gw_port, mllp_port = _port(), _port()
        url = f"http://127.0.0.1:{gw_port}"
        procs = [subprocess.Popen([*CLAIMX, "serve", "--port", str(gw_port), "--dev-members",
                                   str(home / "dev")], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            _wait(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, 90,
                  "claimx serve")
            member = json.loads((home / "dev" / "members.json").read_text())["hospital.dev"]
            outbox = home / "outbox.db"
            procs.append(subprocess.Popen(
                [*CLAIMX, "connect", "--gateway", url, "--issuer", "hospital.dev", "--key",
                 member["key_file"], "--outbox", str(outbox), "--mllp",
                 f"127.0.0.1:{mllp_port}", "--no-follow-events"],
                env=env | {"CLAIMX_TOKEN": member["token"]}, cwd=tmp,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait(lambda: socket.create_connection(("127.0.0.1", mllp_port), 1).close() is None,
                  60, "claimx connect")
            start = time.perf_counter()
            with MLLPClient("127.0.0.1", mllp_port) as client:
                for i in range(n):
                    assert b"MSA|AA" in client.send_message(MESSAGE.format(n=i).encode())
            acked = time.perf_counter() - start

            def drained() -> bool:
                out = subprocess.run([*CLAIMX, "connect", "status", "--outbox", str(outbox)],
                                     env=env, capture_output=True, check=True)
                return int(json.loads(out.stdout)["sent"]) == n

            _wait(drained, 300, "publication")
            published = time.perf_counter() - start
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return {"bench": "mllp", "messages": n, "acked_per_s": round(n / acked, 1),
            "published_per_s": round(n / published, 1)}
