"""Processes that verify envelope signatures for large batches (see gateway.core.sigcheck)
and compress their payloads (gateway.store.payload_codec.compress_all).

One pool per gateway process, shared by every publisher in it and started on the first
batch that needs it. The processes come from a fork server that has imported only this
module (signature and compression code), so they start in milliseconds, hold no database
connection, chain client or key, and are forked from no thread-holding parent. Compression
runs there too because the publishing thread, not the verification, bounds a large batch:
the processes had most of a core to spare. A chunk not yet started when the publishing
thread has parsed the batch is taken back and done on that thread.

If the pool breaks (a verifying process killed) or does not answer by the caller's deadline
(a process stopped, or wedged under memory pressure), the batch in hand is verified on the
caller's thread and the next one gets a new pool: a batch is never accepted without every
signature checked, and a publish never waits on the processes past its deadline.

Each process imports the starting program's ``__main__`` as multiprocessing does: a script
that publishes must keep its work under ``if __name__ == "__main__":`` (the benches do), or
every verifying process runs the script again and no chunk is ever answered in time.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import weakref
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.core import sigcheck
from gateway.store import payload_codec

log = logging.getLogger("claimx.publish")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0
_given_up: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()
"""Pools killed for not answering in time: what they have not answered is never waited for."""


T = TypeVar("T")
Known = list[payload_codec.Known]
"""The fields each record's row holds (what compression leaves out), item by item."""
Answer = tuple[list[int], list[tuple[bytes, bytes]]]
"""The failing indexes of a chunk, and (payload hash, compressed payload) of each item."""


@dataclass(frozen=True)
class Job(Generic[T]):
    """A chunk handed to the pool, and the pool it went to (the one to kill should it hang)."""

    pool: ProcessPoolExecutor
    future: Future[T]


def check_and_pack(items: list[sigcheck.Item], known: Known) -> Answer:
    """What a process does with a chunk: verify every signature, compress every payload
    (each payload crosses the pipe once, for both)."""
    return sigcheck.failing(items), payload_codec.compress_all(
        [(item[4], k) for item, k in zip(items, known, strict=True)])


def submit(items: list[sigcheck.Item], known: Known, processes: int) -> Job[Answer] | None:
    """Hand ``items`` to the shared pool of ``processes`` processes; None when no pool can
    take them (the caller does the work itself)."""
    pool = _shared(processes)
    if pool is None:
        return None
    try:
        return Job(pool, pool.submit(check_and_pack, items, known))
    except (BrokenProcessPool, RuntimeError):  # killed, or shut down at interpreter exit
        _discard(pool)
        return None


def result(job: Job[Answer] | None, items: list[sigcheck.Item], known: Known,
           deadline: float) -> Answer:
    """:func:`check_and_pack` of the chunk: the pool's answer if it comes by ``deadline`` (a
    ``time.monotonic()`` reading, one for all the chunks of a publish call), else done here,
    as it is when the pool has not started the chunk yet (taken back: the caller's thread
    would otherwise wait idle)."""
    if job is not None and not job.future.cancel():
        answer = _answer(job, deadline)
        if answer is not None:
            return answer
    return check_and_pack(items, known)


def _answer(job: Job[T], deadline: float) -> T | None:
    """The pool's answer, or None when it has none to give in time."""
    if job.pool in _given_up and not job.future.done():
        return None
    try:
        return job.future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        if job.pool not in _given_up:
            log.warning("the signature-verifying processes did not answer in time "
                        "(CLAIMX_VERIFY_TIMEOUT_SECONDS); killing them, verifying this batch "
                        "here and starting new processes for the next one")
            _give_up(job.pool)
    except BrokenProcessPool:
        if job.pool not in _given_up:
            log.warning("a signature-verifying process died; verifying this batch here and "
                        "starting new processes")
            _discard(job.pool)
    except CancelledError:  # queued when its pool was discarded: nobody will run it
        pass
    return None


def _give_up(pool: ProcessPoolExecutor) -> None:
    """Kill the processes of a pool that does not answer, and discard it.

    Python 3.11's ProcessPoolExecutor cannot stop a call in progress (terminate_workers()
    arrives in 3.14) and shutdown() only ends workers that come back for more work: a
    stopped or wedged worker would keep its process, its queued chunks and the executor's
    threads forever (and hang the gateway's exit, which joins those threads). Once killed,
    the executor sees its workers die, fails whatever they held with BrokenProcessPool and
    releases its threads and pipes."""
    _given_up.add(pool)
    # dict() copies in one step under the GIL, while the executor may still be spawning
    for process in dict(pool._processes or {}).values():
        try:
            process.kill()
        except (OSError, ValueError):  # already gone (or closed): nothing left to stop
            pass
    _discard(pool)


def _shared(processes: int) -> ProcessPoolExecutor | None:
    global _pool, _size
    with _lock:
        if _pool is not None and _size == processes:
            return _pool
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=False)
        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["gateway.services.sigpool"])
            _pool, _size = ProcessPoolExecutor(processes, mp_context=ctx), processes
        except (OSError, ValueError) as exc:  # no process support here: threads will do
            log.warning("cannot start signature-verifying processes (%s); verifying on "
                        "threads", exc)
            _pool, _size = None, 0
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Shut ``pool`` down and, if it is still the shared one, let the next batch start anew
    (another caller may have replaced it already: that new pool is kept)."""
    global _pool, _size
    with _lock:
        pool.shutdown(wait=False, cancel_futures=True)
        if _pool is pool:
            _pool, _size = None, 0
