"""anvil as a child process: :func:`start` for any caller, and :class:`LocalNode`, the local
network's chain whose state lives under CLAIMX_HOME/chain/.

:func:`start` is the one place an anvil is started and waited for (the tests' session node,
the benchmarks, outage drills): ``start(state_file=None, port=None)`` returns a running
:class:`Anvil` with its ``url``, ``stop()``, and ``pause()``/``resume()`` (SIGSTOP/SIGCONT:
a node that accepts connections and never answers). It dies with the thread that started it.

``claimx serve`` without ``--rpc-url`` starts anvil (from the project's npm toolchain, or
``CLAIMX_ANVIL``) with ``--state chain/state.json --state-interval 1``: anvil loads the file
at start and dumps it every second and on exit, so the chain survives restarts; a ``kill -9``
may lose up to a second of blocks, which the anchor worker's reconciliation repairs.

The child dies with serve: it is told SIGTERM (which makes it dump its state) when its parent
dies (``PR_SET_PDEATHSIG``), and :meth:`LocalNode.stop` terminates it on a clean exit; it
runs in its own session so a terminal's Ctrl-C reaches serve only, which then stops it. A
lock file, held by serve and anvil both, keeps a second serve off the same state; its pid is
in chain/anvil.pid and its URL, once it answers, in chain/url.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from gateway.core.errors import ClaimxError

ANVIL_IN_REPO = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_REPO = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1
log = logging.getLogger("claimx.node")


def find_anvil() -> Path:
    """``CLAIMX_ANVIL``, else the checkout's npm toolchain; one line says how to get it."""
    given = os.environ.get("CLAIMX_ANVIL")
    candidates = [Path(given)] if given else [_REPO / ANVIL_IN_REPO, Path.cwd() / ANVIL_IN_REPO]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ClaimxError(f"anvil (the local chain node) not found at {candidates[0]}: run `npm ci` "
                      "in the claimx checkout, set CLAIMX_ANVIL, or pass --rpc-url",
                      code="no_anvil")


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGTERM when serve dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # serve died between fork and prctl
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Anvil:
    """A running anvil child: ``url`` answers JSON-RPC. A context manager that stops it."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path | None) -> None:
        self.proc, self.url, self.log = proc, url, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): connections are accepted and never answered. Returns
        once every thread of the node has stopped: the signal is delivered asynchronously,
        and a thread still running on the other core could answer a request sent at once
        (seen on a loaded machine)."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while not self._stopped() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _stopped(self) -> bool:
        """Whether every thread of the node is stopped (Linux /proc; True where unreadable)."""
        try:
            tasks = list(Path(f"/proc/{self.proc.pid}/task").iterdir())
            return all((t / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT"
                       for t in tasks)
        except (OSError, IndexError):
            return True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil dumps its state file, if it has one), SIGKILL after ``timeout``;
        a paused node is resumed first so it can hear the SIGTERM."""
        if self.proc.poll() is not None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.stop()


def start(state_file: Path | None = None, port: int | None = None, *,
          binary: Path | None = None, log: Path | None = None, timeout: float = 30.0,
          pass_fds: Sequence[int] = ()) -> Anvil:
    """Start anvil on 127.0.0.1 (``port``, or a free one) and wait until it answers.

    ``state_file``: loaded at start if it exists, dumped every second and on SIGTERM (a
    chain that survives restarts); without it the chain is thrown away. Output goes to
    ``log`` (else nowhere). The child runs in its own session (a terminal's Ctrl-C reaches
    the caller only, which stops it) and gets SIGTERM when the starting thread dies
    (``PR_SET_PDEATHSIG``), so no test run or benchmark leaves a node behind.
    """
    port = port or _free_port()
    cmd = [str(binary or find_anvil()), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state_file is not None:
        cmd += ["--state", str(state_file), "--state-interval", "1"]
    parent = os.getpid()
    with (log or Path(os.devnull)).open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                pass_fds=tuple(pass_fds),
                                preexec_fn=lambda: _die_with_parent(parent))
    node = Anvil(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_answering(node, timeout)
    except BaseException:
        node.stop()
        raise
    return node


def _wait_answering(node: Anvil, timeout: float) -> None:
    """Until ``eth_chainId`` answers (plain urllib: no web3 loaded for this)."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                       "params": []}).encode()
    where = f"; see {node.log}" if node.log else ""
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            tail = node.log.read_text(errors="replace")[-400:].strip() if node.log else ""
            raise ClaimxError(f"anvil exited ({node.proc.returncode}) at start{where}"
                              + (f": {tail}" if tail else ""), code="node_failed")
        request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:  # URLError, refused, reset: not up yet
            pass
        time.sleep(0.1)
    raise ClaimxError(f"anvil did not answer within {timeout:.0f} s{where}", code="node_failed")


class LocalNode:
    """One anvil child for one CLAIMX_HOME; :meth:`start` returns its JSON-RPC URL."""

    def __init__(self, home: Path, binary: Path | None = None, port: int | None = None) -> None:
        """``port``: a fixed port (a node restarted where its clients expect it, as
        scripts/drill.py does); default a free one at each start."""
        self.folder = home / "chain"
        self.state = self.folder / "state.json"
        self.binary = binary or find_anvil()
        self.node: Anvil | None = None
        self.port = port
        self.url = ""
        self._lock: IO[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.node.proc if self.node is not None else None

    def start(self, timeout: float = 30.0) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._keep_good_state()
        self.node = start(self.state, self.port, binary=self.binary, log=self.folder / "anvil.log",
                          timeout=timeout, pass_fds=(self._lock.fileno(),) if self._lock else ())
        (self.folder / "anvil.pid").write_text(f"{self.node.pid}\n")
        self.url = self.node.url
        (self.folder / "url").write_text(self.url + "\n")  # for `claimx verify --rpc-url`
        return self.url

    def _keep_good_state(self) -> None:
        """Keep the last state that parses beside it; a dump cut short by ``kill -9`` is
        replaced by that copy (older blocks: the anchor worker's reconciliation repairs it)."""
        backup = self.state.with_name("state.prev.json")
        if not self.state.exists():
            return
        try:
            json.loads(self.state.read_bytes())
        except ValueError:
            if not backup.exists():
                raise ClaimxError(f"the chain state {self.state} is damaged and has no "
                                  f"backup: move {self.folder.parent} aside to start afresh",
                                  code="state_damaged") from None
            log.warning("chain state %s is damaged; using the previous start's copy",
                        self.state)
            shutil.copyfile(backup, self.state)
            return
        shutil.copyfile(self.state, backup)

    def _take_lock(self, wait: float = 5.0) -> None:
        """The child shares the lock, so a dying anvil still dumping its state holds it."""
        lock = (self.folder / "lock").open("wb")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                lock.close()
                raise ClaimxError(f"another claimx serve is using {self.folder.parent}: stop "
                                  "it first, or give this one its own CLAIMX_HOME",
                                  code="home_in_use") from exc
        self._lock = lock

    def stop(self) -> None:
        """Terminate anvil (it dumps its state on SIGTERM) and release the lock."""
        if self.node is not None:
            self.node.stop()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
