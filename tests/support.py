"""Helpers shared by tests (fixtures live in conftest.py): free ports, admitted
institutions, chain time travel, and the one way tests start a real `claimx serve`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # imported where used: tests/e2e/test_external_client.py uses this module
    from gateway.chain.client import Chain, Deployment  # and must load nothing of claimx
    from gateway.core.keys import SigningKey
    from gateway.core.types import KeyAlgorithm, Role
    from gateway.dev.node import Anvil

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
CLAIMX = [sys.executable, "-m", "gateway.cli"]
"""The claimx command of this checkout, whatever is installed."""


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this session handed out already.

    Two calls in a row can get the same ephemeral port back from the kernel (the first socket
    is closed by then); a test that starts two listeners on them then fails with "address
    already in use"."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


@dataclass
class Served:
    """A running `claimx serve`: its base URL, the dev members it wrote, its log."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    members_file: Path | None

    @property
    def members(self) -> dict[str, Any]:
        assert self.members_file is not None, "started without --dev-members"
        return json.loads(self.members_file.read_text())  # type: ignore[no-any-return]

    def auth(self, slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.members[slug]['token']}"}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def serve_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for `claimx serve` in ``tmp_path`` with fast test timings and no
    CLAIMX_* settings leaking in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    env |= {"CLAIMX_HOME": str(tmp_path / "home"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "CLAIMX_URGENT_POLL_SECONDS": "0.05", "CLAIMX_ANCHOR_INTERVAL_SECONDS": "1",
            "CLAIMX_WEBHOOK_POLL_SECONDS": "0.05",
            "CLAIMX_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}  # tests' receivers are local
    return env | (extra or {})


@contextmanager
def serve_gateway(tmp_path: Path, args: Sequence[str] = (), *, dev_members: bool = True,
                  env: dict[str, str] | None = None, timeout: float = 60,
                  port: int | None = None) -> Iterator[Served]:
    """Start `claimx serve --port P [--dev-members DIR] ARGS...`, wait until /healthz answers
    (failing the test with the server's log if it exits or takes longer than ``timeout``),
    and stop it afterwards, killing it if it does not stop within 10 s. ``port`` fixes the port
    (a gateway restarted where its clients expect it)."""
    port = port or free_port()
    members = tmp_path / "dev" if dev_members else None
    cmd = [*CLAIMX, "serve", "--port", str(port), *args]
    if members is not None:
        cmd += ["--dev-members", str(members)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(cmd, env=serve_env(tmp_path, env), cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", proc, log,
                    members / "members.json" if members else None)
    try:
        _wait_healthy(served, timeout)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_healthy(served: Served, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if served.proc.poll() is not None:
            pytest.fail(f"claimx serve exited ({served.proc.returncode}):\n{served.log_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"claimx serve did not answer within {timeout} s:\n{served.log_text()}")
        time.sleep(0.2)


@contextmanager
def own_anvil(state: Path | None = None, *, port: int | None = None) -> Iterator[Anvil]:
    """An anvil of this test only (it may be frozen or killed), its chain kept in ``state``
    when given (dumped every second), always resumed and killed afterwards."""
    from gateway.dev import node

    assert ANVIL.exists(), f"anvil binary missing at {ANVIL}: run `npm ci`"
    anvil = node.start(state, port, binary=ANVIL, timeout=20)
    try:
        yield anvil
    finally:
        anvil.resume()
        anvil.proc.kill()
        anvil.proc.wait(10)


@dataclass
class Institution:
    slug: str
    key: SigningKey
    operator: str

    @property
    def id(self) -> bytes:
        from gateway.core.types import member_id

        return member_id(self.slug)

    @property
    def issuer(self) -> str:
        from gateway.core.types import hex32

        return hex32(self.id)


def admit(chain: Chain, deployment: Deployment, slug: str, role: Role | None = None,
          alg: KeyAlgorithm | None = None) -> Institution:
    """Admit an institution (a hospital unless ``role``) with a fresh key (Ed25519 unless
    ``alg``) and operator account."""
    from gateway.core.keys import SigningKey
    from gateway.core.types import KeyAlgorithm, Role

    role = Role.HOSPITAL if role is None else role
    alg = KeyAlgorithm.ED25519 if alg is None else alg
    key = SigningKey.generate(alg)
    operator = chain.new_funded_account()
    registry = chain.registry(deployment.registry)
    inst = Institution(slug, key, operator)
    registry.admit_member(inst.id, role, slug, [operator])
    registry.register_key(inst.id, key, sender=operator)  # the member's own operator
    return inst


def have(cmd: str) -> bool:  # noqa: D103
    return shutil.which(cmd) is not None


def advance_time(chain: Chain, seconds: int) -> int:
    """Move the chain's clock forward and mine a block (dev chains only); returns the new now."""
    provider = chain.w3.provider
    tester = getattr(provider, "ethereum_tester", None)
    if tester is not None:
        tester.time_travel(chain.now() + seconds)
    else:
        provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return chain.now()


PG_BIN = "pg_createcluster"


@contextmanager
def own_pg_cluster(name: str) -> Iterator[tuple[str, str]]:
    """A PostgreSQL 15 cluster of this test only, dropped afterwards (never the shared one)."""
    if shutil.which(PG_BIN) is None:
        pytest.fail("pg_createcluster missing: install postgresql-common")
    port = free_port()
    subprocess.run(["pg_createcluster", "15", name, "--port", str(port), "--", "--auth=trust"],
                   check=True, capture_output=True)
    try:
        yield name, f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(["pg_dropcluster", "--stop", "15", name], capture_output=True)


def pg_ctl(name: str, action: str) -> None:
    """``start`` or ``stop`` a cluster made by :func:`own_pg_cluster`."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", name, action],
                   check=True, capture_output=True)
