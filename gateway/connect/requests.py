"""Evidence requests reach the institution's staff: the member's event stream, followed.

Reads ``GET /v1/events`` as server-sent events (WHATWG HTML), resuming with ``Last-Event-ID``
from the id stored in the outbox, so a restart neither misses nor repeats a request. For each
``request.opened`` it logs (event id and claim id only), counts, and runs the configured
command, if any: an argv list, never a shell, with the event's JSON on standard input.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from gateway.connect.outbox import Outbox
from gateway.connect.publisher import backoff

log = logging.getLogger("claimx.connect.requests")
CURSOR = "events.last_id"
COMMAND_TIMEOUT = 60.0


def sse_events(lines: Iterator[str]) -> Iterator[tuple[int | None, str, str]]:
    """(id, event type, data) of each event in a text/event-stream, comments skipped."""
    eid: int | None = None
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield eid, kind, "\n".join(data)
            eid, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id" and value.isdigit():
            eid = int(value)
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


class RequestFollower:
    """Follows the stream in a thread of its own, reconnecting with backoff, until stop()."""

    def __init__(self, outbox: Outbox, gateway: str, token: str,
                 command: Sequence[str] = ()) -> None:
        self.outbox = outbox
        self.url = gateway.rstrip("/") + "/v1/events"
        self.token = token
        self.command = tuple(command)
        self.opened = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._follow()
                failures = 0
            except httpx.HTTPError as exc:
                log.info("event stream interrupted (%s); reconnecting", type(exc).__name__)
                failures += 1
            self._stop.wait(backoff(failures))

    def _follow(self) -> None:
        after = self.outbox.get_meta(CURSOR) or "0"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream",
                   "Last-Event-ID": after}
        timeout = httpx.Timeout(10.0, read=45.0)  # keepalives come every 15 s
        with httpx.stream("GET", self.url, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {r.status_code}", request=r.request,
                                            response=r)
            for eid, kind, data in sse_events(r.iter_lines()):
                if self._stop.is_set():
                    return
                if kind == "request.opened":
                    self._opened(eid, data)
                if eid is not None and eid > int(after):
                    after = str(eid)
                    self.outbox.set_meta(CURSOR, after)

    def _opened(self, eid: int | None, data: str) -> None:
        self.opened += 1
        event: Any = json.loads(data)
        claim = event.get("claim_id") if isinstance(event, dict) else None
        log.info("evidence request opened: event %s, claim %s", eid, claim)
        if not self.command:
            return
        try:
            done = subprocess.run(self.command, input=data.encode(), timeout=COMMAND_TIMEOUT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("request command failed for event %s: %s", eid, type(exc).__name__)
            return
        if done.returncode:
            log.warning("request command exited %d for event %s", done.returncode, eid)
