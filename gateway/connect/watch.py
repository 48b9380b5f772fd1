"""The watch folder: export files dropped in DIR are published, then moved out of the way.

A file is taken only when it is whole: either its size and modification time have stayed the
same for ``settle`` seconds, or it was written under a name the agent ignores (a dot file, or
one ending in ``.tmp``, ``.part``, ``.partial``, ``.crdownload``, ``.filepart``) and renamed into
place. Taken files go to ``DIR/done/``; files that cannot be adapted go to ``DIR/failed/``
beside a ``NAME.error.txt`` holding the located error (code, location, message; no values).

The file moves only after its records are committed, and a file seen again (the agent was
killed between commit and move) is answered from the outbox by its content hash.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.connect.intake import Intake, source_key
from gateway.core.errors import AdapterError

log = logging.getLogger("claimx.connect.watch")
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".error.txt")


class Watcher:
    """Polls DIR every ``interval`` seconds in a thread of its own until :meth:`stop`."""

    def __init__(self, folder: Path, intake: Intake, on_stored: Callable[[], None], *,
                 settle: float = 1.0, interval: float = 0.25, max_bytes: int = 10 << 20,
                 ) -> None:
        self.folder = folder
        self.done = folder / "done"
        self.failed = folder / "failed"
        self.intake = intake
        self.on_stored = on_stored
        self.settle = settle
        self.interval = interval
        self.max_bytes = max_bytes
        self._seen: dict[str, tuple[int, int, int]] = {}
        """name -> (size, mtime_ns, polls it has been unchanged)."""
        self._stop = threading.Event()
        self.counts = {"done": 0, "failed": 0}

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        for d in (self.folder, self.done, self.failed):
            d.mkdir(parents=True, exist_ok=True)
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - one bad pass must not stop the folder
                log.exception("watch pass failed")
            self._stop.wait(self.interval)

    def scan(self) -> None:
        """Take every file that has been stable for ``settle`` seconds."""
        stable_polls = max(1, round(self.settle / self.interval))
        present = set()
        for path in sorted(self.folder.iterdir()):
            if _ignored(path.name):
                continue
            if path.is_symlink():  # would publish whatever it points at that the agent can read
                self._fail(path, AdapterError("symbolic links are not followed: copy or move "
                                              "the file in", code="symlink"))
                continue
            if not path.is_file():
                continue
            present.add(path.name)
            st = path.stat()
            size, mtime = st.st_size, st.st_mtime_ns
            before = self._seen.get(path.name)
            polls = before[2] + 1 if before and before[:2] == (size, mtime) else 0
            self._seen[path.name] = (size, mtime, polls)
            if polls >= stable_polls:
                self._take(path)
                self._seen.pop(path.name, None)
        for gone in set(self._seen) - present:
            del self._seen[gone]

    def _take(self, path: Path) -> None:
        if path.stat().st_size > self.max_bytes:
            self._fail(path, AdapterError(f"file exceeds {self.max_bytes} bytes",
                                          code="too_large", file=path.name))
            return
        raw = path.read_bytes()
        try:
            stored = self.intake.take(raw, key=source_key("file", raw), channel="watch",
                                      file=path.name)
        except AdapterError as exc:
            self._fail(path, exc)
            return
        self.counts["done"] += 1
        if not stored.replayed:
            self.on_stored()
        path.replace(_free_name(self.done, path.name))


    def _fail(self, path: Path, exc: AdapterError) -> None:
        """Move ``path`` to failed/ beside NAME.error.txt with the located error."""
        self.counts["failed"] += 1
        log.info("watched file refused: %s", exc.code)
        target = _free_name(self.failed, path.name)
        (self.failed / (target.name + ".error.txt")).write_text(
            f"{exc}\n{json.dumps(exc.to_dict(), ensure_ascii=False)}\n", encoding="utf-8")
        path.replace(target)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name.1``, ``name.2``... when a file of that name is there."""
    target, n = folder / name, 0
    while target.exists():
        n += 1
        target = folder / f"{name}.{n}"
    return target
