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
from typing import Any

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
           n: int, batch: int, *, workers: int = 1,
           settings: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`claimx serve` (``--workers`` processes on the one port), anchoring once all N are
    in unless ``settings`` (CLAIMX_* variables) say otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    env |= {"CLAIMX_HOME": str(home), "CLAIMX_ANCHOR_BATCH_MAX": str(n),
            "CLAIMX_ANCHOR_INTERVAL_SECONDS": "3600", "CLAIMX_URGENT_POLL_SECONDS": "0.05",
            "CLAIMX_MAX_BATCH": str(batch), "CLAIMX_MAX_BODY_BYTES": str(64 << 20),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")]))}
    env |= settings or {}
    with (home / "serve.log").open("wb") as log:  # a file, not a pipe nobody drains
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--rpc-url",
             anvil_url, "--database-url", database_url, "--deployment",
             str(home / "deployment.json"), "--workers", str(workers)], env=env, cwd=home,
            stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_anchored(client: httpx.Client, n: int, start: float, limit: float = 600) -> None:
    while True:
        head = client.get("/v1/log/head").json()["anchored"]
        if head is not None and head["size"] >= n:
            return
        if time.perf_counter() - start > limit:
            raise SystemExit(f"not anchored after {limit:.0f} s: {head}")
        time.sleep(0.02)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive, from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


@dataclass(frozen=True)
class ScaleRun:
    workers: int
    records_per_s: float
    publish_per_s: float
    cpu_s_per_record: float
    """Gateway CPU (all its processes) per record, from accepting to anchoring."""
    cpu_share: list[float]
    """Each gateway process's share of that CPU (how evenly the socket spread the load)."""
    anchors: list[tuple[int, int]]
    """(records, gas) of each anchor written during the run."""


def _client(url: str, token: str, bodies: list[bytes], go: Any, done: Any) -> None:
    """One publishing client process: posts its pre-encoded batches, a fresh connection each
    (so the kernel hands every request to whichever gateway process accepts it first)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    go.wait()
    for body in bodies:
        r = httpx.post(url + "/v1/records/batch", content=body, headers=headers, timeout=300)
        if r.status_code != 201:
            done.put(f"{r.status_code} {r.text[:300]}")
            return
    done.put(None)


def run_clients(anvil_url: str, database_url: str, n: int, batch: int, *, workers: int,
                clients: int, settings: dict[str, str]) -> ScaleRun:
    """N pre-signed invoices from ``clients`` processes at once to `claimx serve --workers
    W`; timed from the start signal until the last record is anchored."""
    import multiprocessing

    home = Path(tempfile.mkdtemp(prefix=f"claimx-bench-scale{workers}-"))
    key, hospital, token = _prepare(anvil_url, database_url, home)
    progress(f"{workers} process(es): signing {n} invoices for {clients} clients (not timed)")
    bodies = _signed_bodies(key, hospital, n, batch)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(anvil_url, database_url, home, port, n, batch, workers=workers,
                  settings=settings)
    ctx = multiprocessing.get_context("fork")  # the bodies are inherited, not pickled
    go, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, token, bodies[c::clients], go, done))
             for c in range(clients)]
    try:
        _wait_up(url, proc, home)
        for p in procs:
            p.start()
        time.sleep(1.0)  # every client process is up and waiting
        pids = process_tree(proc.pid)
        cpu0 = cpu_seconds(pids)
        progress(f"{workers} process(es): {clients} clients publishing {n} records")
        start = time.perf_counter()
        go.set()
        for _ in procs:
            error = done.get(timeout=600)
            if error is not None:
                raise SystemExit(f"batch publish failed: {error}")
        published = time.perf_counter() - start
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=120) as client:
            _wait_anchored(client, n, start)
        total = time.perf_counter() - start
        cpu1 = cpu_seconds(pids)
    finally:
        for p in procs:
            p.join(5)
        _stop(proc)
    used = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
    busy = sorted((u for u in used.values() if u > 0.5), reverse=True)
    return ScaleRun(workers, n / total, n / published, sum(used.values()) / n,
                    [round(u / sum(busy), 2) for u in busy], _anchors(database_url))


def _anchors(database_url: str) -> list[tuple[int, int]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        sizes = conn.execute(text("SELECT size, gas_used FROM anchors ORDER BY size")).all()
    engine.dispose()
    out, prev = [], 0
    for size, gas in sizes:
        out.append((int(size) - prev, int(gas)))
        prev = int(size)
    return out


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


def _signed_bodies(key: SigningKey, hospital: bytes, n: int, batch: int) -> list[bytes]:
    """N signed invoices as the request bodies of batches of ``batch`` (never timed)."""
    envelopes = sign_invoices(key, hospital, n)
    return [json.dumps({"envelopes": envelopes[i:i + batch]}).encode()
            for i in range(0, n, batch)]


def run(anvil_url: str, database_url: str, n: int, batch: int) -> HttpRun:
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-http-"))
    key, hospital, token = _prepare(anvil_url, database_url, home)
    progress(f"http: signing {n} invoices and encoding the request bodies (not timed)")
    bodies = _signed_bodies(key, hospital, n, batch)
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
            _wait_anchored(client, n, start)
            total = time.perf_counter() - start
    finally:
        _stop(proc)
    return HttpRun(n / total, n / published)
