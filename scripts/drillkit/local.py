"""A deployment the drill starts for one scenario and tears down after it.

The split shape operators run: anvil (``gateway.dev.node.LocalNode``, ``--state`` dumped every
second, on a fixed port so it can be restarted where the gateway expects it), a PostgreSQL
cluster of the drill's own (``pg_createcluster`` on a free port, one database per scenario,
never the shared server) or SQLite, ``claimx serve --no-worker --dev-members`` and one or two
``claimx worker`` processes. Actions are signals, ``pg_ctlcluster`` and copies of anvil's
state file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from drillkit.load import Member
from drillkit.target import ActionFailed, Endpoints, Target
from gateway.core.keys import SigningKey
from gateway.dev.node import LocalNode

ROOT = Path(__file__).resolve().parents[2]
CLAIMX = [sys.executable, "-m", "gateway.cli"]
TIMINGS = {"CLAIMX_ANCHOR_INTERVAL_SECONDS": "1", "CLAIMX_URGENT_POLL_SECONDS": "0.1",
           "CLAIMX_LEASE_SECONDS": "3"}
"""Quicker than the defaults so a drill of a minute shows recovery; printed in --help."""
MEMBER = "hospital.dev"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_version() -> str:
    versions = sorted((p.name for p in Path("/usr/lib/postgresql").glob("*")
                       if p.name.isdigit()), key=int)
    if not versions or shutil.which("pg_createcluster") is None:
        raise SystemExit("PostgreSQL server tools missing (pg_createcluster): install "
                         "postgresql and postgresql-common, or use --database sqlite")
    return versions[-1]


class PgCluster:
    """A PostgreSQL cluster of this drill only, on its own port, dropped at the end."""

    def __init__(self, name: str) -> None:
        self.name, self.version, self.port = name, _pg_version(), free_port()

    def create(self) -> PgCluster:
        subprocess.run(["pg_createcluster", self.version, self.name, "--port", str(self.port),
                        "--", "--auth=trust"], check=True, capture_output=True)
        self.ctl("start")
        return self

    def ctl(self, action: str) -> None:
        done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version,
                               self.name, action], capture_output=True, text=True)
        if done.returncode != 0:
            raise ActionFailed(f"pg_ctlcluster {action} {self.name}: "
                               f"{done.stderr.strip()[:200]}")

    def new_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", self.version, self.name],
                       capture_output=True)


class LocalDeployment(Target):
    """anvil + database + ``serve --no-worker`` + ``workers`` workers, in ``folder``."""

    def __init__(self, folder: Path, *, pg: PgCluster | None, workers: int) -> None:
        self.folder, self.pg, self.n_workers = folder, pg, workers
        folder.mkdir(parents=True)
        self.node = LocalNode(folder, port=free_port())
        self.snapshot = folder / "state.snapshot.json"
        self.db_url = pg.new_database(folder.name.replace("-", "_")) if pg else \
            f"sqlite:///{(folder / 'claimx.db').resolve()}"
        self.port = free_port()
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.started = 0
        self._endpoints: Endpoints | None = None

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> LocalDeployment:
        rpc = self.node.start()
        self.serve = self._spawn("serve", ["serve", "--port", str(self.port), "--no-worker",
                                           "--dev-members", str(self.folder / "dev")], rpc)
        url = f"http://127.0.0.1:{self.port}"
        self._wait(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, 120,
                   "claimx serve to answer", self.serve)
        member = json.loads((self.folder / "dev" / "members.json").read_text())[MEMBER]
        self._endpoints = Endpoints(url, rpc, Member(
            member["token"], SigningKey.load(Path(member["key_file"])), member["member_id"]))
        for _ in range(self.n_workers):
            self._start_worker()
            self._wait(self._lease_taken, 60, "a worker to take the anchor lease",
                       self.workers[-1])
        return self

    def close(self) -> None:
        for proc in [*self.workers, self.serve]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in [*self.workers, self.serve]:
            if proc is not None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self.node.proc is not None and self.node.proc.poll() is None:
            self.node.proc.send_signal(signal.SIGCONT)
        self.node.stop()

    def _spawn(self, name: str, args: list[str], rpc: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
        env |= TIMINGS | {"CLAIMX_HOME": str(self.folder / "home"),
                          "PYTHONPATH": os.pathsep.join(filter(None, [
                              str(ROOT), os.environ.get("PYTHONPATH")]))}
        args = [*args, "--rpc-url", rpc, "--database-url", self.db_url,
                "--deployment", str(self.folder / "deployment.json")]
        with (self.folder / f"{name}.log").open("ab") as log:  # a file, not a pipe
            return subprocess.Popen([*CLAIMX, *args], env=env, cwd=self.folder, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        self.started += 1
        proc = self._spawn(f"worker{self.started}", ["worker"], self.node.url)
        self.workers.append(proc)
        return proc

    def _worker_up(self, n: int) -> bool:
        """The worker's start line is printed once its parts are built (imports, migrations
        and the chain checked): from then on it anchors."""
        return "worker for evidence log" in (self.folder / f"worker{n}.log").read_text(
            errors="replace")

    def _lease_taken(self) -> bool:
        r = httpx.get(self.endpoints().gateway + "/readyz", timeout=5)
        return bool(r.json().get("checks", {}).get("worker", {}).get("lease_holder"))

    def _wait(self, check: Callable[[], bool], within: float, what: str,
              proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ActionFailed(f"waiting for {what}: the process exited "
                                   f"({proc.returncode}); its log is in {self.folder}")
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ActionFailed(f"waited {within:.0f} s for {what}")

    # -- Target ------------------------------------------------------------------------

    def endpoints(self) -> Endpoints:
        assert self._endpoints is not None, "start() first"
        return self._endpoints

    def database_url(self) -> str:
        return self.db_url

    def can(self, action: str) -> bool:
        return self.pg is not None or not action.startswith("db-")

    def act(self, action: str) -> str:
        node = self.node.proc
        assert node is not None
        if action == "node-pause":
            node.send_signal(signal.SIGSTOP)
            return f"node paused (SIGSTOP anvil pid {node.pid})"
        if action == "node-resume":
            node.send_signal(signal.SIGCONT)
            return f"node resumed (SIGCONT anvil pid {node.pid})"
        if action == "node-snapshot":
            return self._take_snapshot()
        if action == "node-restore":
            return self._restore()
        if action in ("db-stop", "db-start"):
            assert self.pg is not None
            self.pg.ctl(action.removeprefix("db-"))
            done = "stopped" if action == "db-stop" else "started"
            return f"database {done} (pg_ctlcluster {self.pg.name})"
        if action == "worker-kill":
            victim = self.workers.pop(0)
            victim.kill()
            victim.wait(10)
            self.killed.add(victim.pid)
            return f"worker killed (SIGKILL pid {victim.pid})"
        if action == "worker-start":  # returns once it runs: kills land in its work
            proc, since = self._start_worker(), time.monotonic()
            n = self.started
            self._wait(lambda: self._worker_up(n), 120, "the new worker to start", proc)
            return f"worker started (pid {proc.pid}, up in {time.monotonic() - since:.1f} s)"
        if action in ("leader-pause", "leader-resume"):
            leader = self.workers[0]  # the first one took the lease before the second started
            leader.send_signal(signal.SIGSTOP if action == "leader-pause" else signal.SIGCONT)
            return f"leader worker {action.removeprefix('leader-')}d (pid {leader.pid})"
        raise ActionFailed(f"unknown action {action}")

    def _take_snapshot(self) -> str:
        for _ in range(20):  # anvil rewrites the file every second: take a whole one
            try:
                raw = self.node.state.read_bytes()
                json.loads(raw)
            except (OSError, ValueError):
                time.sleep(0.2)
                continue
            self.snapshot.write_bytes(raw)
            return f"node state copied ({len(raw) // 1024} KiB)"
        raise ActionFailed(f"no complete anvil state in {self.node.state}")

    def _restore(self) -> str:
        if not self.snapshot.exists():
            raise ActionFailed("node-restore needs a node-snapshot first")
        proc = self.node.proc
        assert proc is not None
        proc.kill()  # kill -9: it cannot dump its newer state on the way out
        proc.wait(10)
        self.node.stop()  # releases the state lock
        shutil.copyfile(self.snapshot, self.node.state)
        self.node.start()
        return f"node killed and restarted from the older state (port {self.node.port})"

    def crashed(self) -> list[str]:
        out = []
        for name, proc in [("serve", self.serve), *((f"worker pid {w.pid}", w)
                                                     for w in self.workers),
                           ("anvil", self.node.proc)]:
            if proc is not None and proc.poll() is not None and proc.pid not in self.killed:
                out.append(f"{name} exited ({proc.returncode})")
        return out

    def diagnosis(self) -> str:
        """The last error a worker logged (``anchor cycle failed: ... (code)``)."""
        found = ""
        for log in sorted(self.folder.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if re.search(r"anchor cycle failed|Traceback|^error:|ERROR", line):
                    found = f"{log.stem}: {line.split(' ', 3)[-1][:160]}"
        return found
