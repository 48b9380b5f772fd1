"""The monitor's promise check: acceptance promises past their deadline, not kept.

The institution keeps every promise the exchange signed for it (``claimx connect`` keeps each
one with its sent record in the outbox; anything else can save them as JSON files). At each
poll every promise not yet settled is decided against the chain alone
(:func:`gateway.verify.promise.verify_promise`): with the extensions, inclusion proof and
rejection the gateway shows now (``GET /v1/records/{digest}/promise``), or with none when it
shows nothing. A promise past its deadline in force without an inclusion in a head anchored
in time, or a signed and justified rejection, is a ``broken_promise``; one whose signature is
not the exchange operator's is an ``invalid_promise``. Kept and rejected promises are settled
and not asked about again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.core.errors import ClaimxError, InputError
from gateway.core.promise import Promise, PromiseBundle
from gateway.verify.logwatch import Fetch
from gateway.verify.profile import SQLITE_MAGIC

if TYPE_CHECKING:
    from gateway.verify.monitor import Finding, Monitor


def read_promises(path: Path) -> list[Promise]:
    """The promises in ``path``: a ``claimx connect`` outbox (read only), a folder of saved
    promise or promise-bundle JSON files, or one such file."""
    try:
        if path.is_dir():
            return [_from_file(p) for p in sorted(path.glob("*.json"))]
        with path.open("rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"cannot read promises {path}: {exc.strerror}", code="bad_profile",
                         file=str(path)) from exc
    if magic == SQLITE_MAGIC:
        return _from_outbox(path)
    return [_from_file(path)]


def _from_file(path: Path) -> Promise:
    raw = path.read_bytes()
    try:
        return PromiseBundle.from_json(raw).promise
    except ClaimxError:
        try:
            return Promise.from_json(raw)
        except ClaimxError as exc:
            raise InputError(f"{path}: not a claimx promise ({exc.code}: {exc.msg})",
                             code="bad_profile", file=str(path)) from exc


def _from_outbox(path: Path) -> list[Promise]:
    """Each sent record's promise, as the outbox keeps it in the gateway's answer."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT digest, response FROM items WHERE response IS NOT NULL"
                              ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a claimx connect outbox ({exc})", code="bad_profile",
                         file=str(path)) from exc
    out = []
    for digest, response in rows:
        try:
            answer = json.loads(response)
        except ValueError:
            continue
        promise = answer.get("promise") if isinstance(answer, dict) else None
        if isinstance(promise, dict):
            try:
                out.append(Promise.model_validate(promise))
            except ValueError as exc:
                raise InputError(f"{path}: the promise kept for {digest} is malformed",
                                 code="bad_profile", file=str(path)) from exc
    return out


class PromiseWatch:
    """A :data:`gateway.verify.monitor.Check`: decides the open promises at each poll."""

    def __init__(self, promises: list[Promise], fetch: Fetch | None) -> None:
        self.open = {p.promise_id: p for p in promises}
        self.fetch = fetch
        self.settled: dict[str, str] = {}
        """Promise id -> KEPT or REJECTED."""

    def __call__(self, mon: Monitor) -> list[Finding]:
        from gateway.verify.monitor import Finding
        from gateway.verify.promise import verify_promise

        now = max(int(time.time()), mon.chain.now())
        out = []
        for pid, promise in list(self.open.items()):
            bundle = self._bundle(promise, mon)
            if bundle is None:
                continue  # the gateway is unreachable: asked again at the next poll
            report = verify_promise(bundle, mon.chain, mon.log.address, now=now)
            what = f"the promise for record {promise.digest} (accepted at " \
                   f"{promise.accepted_at}, merge delay {promise.merge_delay} s)"
            if report.verdict in ("KEPT", "REJECTED"):
                self.settled[pid] = report.verdict
                del self.open[pid]
            elif report.verdict == "BROKEN" and report.decision is not None:
                d = report.decision
                out.append(Finding("broken_promise", f"{what} is past its deadline "
                                   f"{d.deadline} without inclusion in an anchored head: "
                                   f"{d.detail}", f"promise:{pid}"))
            elif report.verdict == "INVALID":
                failed = next((c for c in report.checks if not c.ok), None)
                out.append(Finding("invalid_promise", f"{what} is not a genuine promise of "
                                   "this deployment's exchange" +
                                   (f": {failed.name}: {failed.detail}" if failed else ""),
                                   f"promise:{pid}"))
        mon.progress.open_promises = len(self.open)
        return out

    def _bundle(self, promise: Promise, mon: Monitor) -> PromiseBundle | None:
        """What the gateway shows now about ``promise`` (our own copy of the promise, its
        extensions, inclusion and rejection), or nothing shown: the bare promise."""
        bare = PromiseBundle(promise=promise, state="open", deadline=promise.deadline)
        if self.fetch is None:
            return bare
        try:
            shown = PromiseBundle.model_validate(
                self.fetch(f"/v1/records/{promise.digest}/promise"))
        except ClaimxError as exc:
            if exc.code == "gateway_unreachable":
                mon.progress.log_error = f"{exc.code}: {exc.msg}"
                return None
            return bare  # refused or not found: the exchange shows no inclusion
        except ValueError:
            return bare  # a malformed answer proves nothing either
        return PromiseBundle(promise=promise, extensions=shown.extensions, state=shown.state,
                             deadline=shown.deadline, inclusion=shown.inclusion,
                             rejection=shown.rejection)
