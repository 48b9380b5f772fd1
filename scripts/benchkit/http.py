"""claimx as deployed: `claimx serve` in its own process on anvil and PostgreSQL, the client
in this process over real HTTP, timed until the last record is anchored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchkit.common import ROOT, free_port, progress, sign_invoices
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.keys import SigningKey
from gateway.core.types import Role, member_id
from gateway.services.auth import issue_credential
from gateway.services.wiring import build_services


@dataclass(frozen=True)
class HttpRun:
    records_per_s: float
    publish_per_s: float


def _prepare(anvil_url: str, database_url: str, home: Path) -> tuple[SigningKey, bytes, str]:
    """Deploy on anvil, migrate the database, admit a hospital and issue its token."""
    chain = Chain.connect(anvil_url)
    deployment = chain.deploy()
    home.mkdir(parents=True, exist_ok=True)
    (home / "deployment.json").write_text(deployment.to_json())
    settings = Settings(home=home, rpc_url=anvil_url, database_url=database_url,
                        deployment_file=home / "deployment.json")
    services = build_services(settings, chain=chain, deployment=deployment)
    key, hospital = SigningKey.generate(), member_id("hospital.bench-http")
    registry = chain.registry(deployment.registry)
    operator = chain.new_funded_account()  # the member's own operator registers its key
    registry.admit_member(hospital, Role.HOSPITAL, "Bench Hospital", [operator])
    registry.register_key(hospital, key, sender=operator)
    with services.db.session() as s:
        token = issue_credential(s, hospital, "bench")
    services.db.engine.dispose()
    return key, hospital, token


def _serve(anvil_url: str, database_url: str, home: Path, port: int,
           n: int, batch: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    env |= {"CLAIMX_HOME": str(home), "CLAIMX_ANCHOR_BATCH_MAX": str(n),
            "CLAIMX_ANCHOR_INTERVAL_SECONDS": "3600", "CLAIMX_URGENT_POLL_SECONDS": "0.05",
            "CLAIMX_MAX_BATCH": str(batch), "CLAIMX_MAX_BODY_BYTES": str(64 << 20),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")]))}
    with (home / "serve.log").open("wb") as log:  # a file, not a pipe nobody drains
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--rpc-url",
             anvil_url, "--database-url", database_url, "--deployment",
             str(home / "deployment.json")], env=env, cwd=home, stdout=log,
            stderr=subprocess.STDOUT)


def _wait_up(url: str, proc: subprocess.Popen[bytes], home: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit("claimx serve did not start:\n"
                     + (home / "serve.log").read_text(errors="replace")[-2000:])


def run(anvil_url: str, database_url: str, n: int, batch: int) -> HttpRun:
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-http-"))
    key, hospital, token = _prepare(anvil_url, database_url, home)
    progress(f"http: signing {n} invoices and encoding the request bodies (not timed)")
    envelopes = sign_invoices(key, hospital, n)
    bodies = [json.dumps({"envelopes": envelopes[i:i + batch]}).encode()
              for i in range(0, n, batch)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(anvil_url, database_url, home, port, n, batch)
    try:
        _wait_up(url, proc, home)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            progress(f"http: publishing {n} records to claimx serve (anvil, PostgreSQL)")
            start = time.perf_counter()
            for body in bodies:
                r = client.post("/v1/records/batch", content=body)
                if r.status_code != 201:
                    raise SystemExit(f"batch publish failed: {r.status_code} {r.text[:300]}")
            published = time.perf_counter() - start
            while True:
                head = client.get("/v1/log/head").json()["anchored"]
                if head is not None and head["size"] >= n:
                    break
                if time.perf_counter() - start > 600:
                    raise SystemExit(f"not anchored after 600 s: {head}")
                time.sleep(0.02)
            total = time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return HttpRun(n / total, n / published)
