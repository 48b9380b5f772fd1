"""Processes that verify envelope signatures for large batches (see gateway.core.sigcheck).

One pool per gateway process, shared by every publisher in it and started on the first
batch that needs it. The processes come from a fork server that has imported only the
signature code, so they start in milliseconds, hold no database connection or chain client,
and are forked from no thread-holding parent. If the pool breaks (a verifying process
killed), the batch in hand is verified on the caller's thread and the next one gets a new
pool: a batch is never accepted without every signature checked.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gateway.core import sigcheck

log = logging.getLogger("claimx.publish")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0


def submit(items: list[sigcheck.Item], processes: int) -> Future[list[int]] | None:
    """Verify ``items`` on the shared pool of ``processes`` processes; None when no pool can
    take them (the caller verifies them itself)."""
    pool = _shared(processes)
    if pool is None:
        return None
    try:
        return pool.submit(sigcheck.failing, items)
    except (BrokenProcessPool, RuntimeError):  # killed, or shut down at interpreter exit
        _discard(pool)
        return None


def result(future: Future[list[int]] | None, items: list[sigcheck.Item]) -> list[int]:
    """The failing indexes of ``items``: from the pool, or checked here when it failed."""
    if future is not None:
        try:
            return future.result()
        except BrokenProcessPool:
            log.warning("a signature-verifying process died; verifying this batch here and "
                        "starting new processes")
            _discard(None)
    return sigcheck.failing(items)


def _shared(processes: int) -> ProcessPoolExecutor | None:
    global _pool, _size
    with _lock:
        if _pool is not None and _size == processes:
            return _pool
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=False)
        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["gateway.core.sigcheck"])
            _pool, _size = ProcessPoolExecutor(processes, mp_context=ctx), processes
        except (OSError, ValueError) as exc:  # no process support here: threads will do
            log.warning("cannot start signature-verifying processes (%s); verifying on "
                        "threads", exc)
            _pool, _size = None, 0
        return _pool


def _discard(pool: ProcessPoolExecutor | None) -> None:
    global _pool, _size
    with _lock:
        if _pool is not None and (pool is None or _pool is pool):
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool, _size = None, 0
