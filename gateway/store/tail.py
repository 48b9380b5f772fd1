"""Follow the events table in id order without losing rows that commit out of order.

PostgreSQL hands out ids when a row is inserted, not when its transaction commits, so id 11
can become visible before id 10. A reader that only asks for ``id > last`` would skip 10 for
good. A :class:`Tail` therefore keeps a *floor* (every id at or below it is settled) and,
above it, the ids it has already returned; each poll looks again at the window between the
floor and the highest id seen. The floor passes a row once that row is older than
``grace``: an id below it still invisible by then belonged to a transaction that rolled back
(or took longer than ``grace`` to commit, which the gateway's short transactions never do).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from gateway.core.types import as_utc
from gateway.store.tables import Event

COMMIT_GRACE = timedelta(seconds=30)
"""How long an insert may stay uncommitted before a reader stops waiting for it."""


class Tail:
    """An at-least-once, id-ordered reader of the events matching ``where``."""

    def __init__(self, after: int, *, where: Sequence[ColumnElement[bool]] = (),
                 grace: timedelta = COMMIT_GRACE, batch: int = 500) -> None:
        self.floor = self.top = after
        self.where, self.grace, self.batch = tuple(where), grace, batch
        self._seen: set[int] = set()
        self.more = False
        """Whether the last poll stopped at ``batch`` rows (poll again without waiting)."""

    def poll(self, s: Session, now: datetime) -> list[Event]:
        """The matching events not returned before, in id order; then move the floor."""
        new = list(s.scalars(select(Event).where(Event.id > self.top, *self.where)
                             .order_by(Event.id).limit(self.batch)))
        self.more = len(new) == self.batch
        if new:
            self.top = new[-1].id
        window = s.execute(select(Event.id, Event.created_at)
                           .where(Event.id > self.floor, Event.id <= self.top, *self.where)
                           .order_by(Event.id)).all()
        fresh = {e.id for e in new}
        late = [i for i, _ in window if i not in self._seen and i not in fresh]
        if late:  # committed after an earlier poll had passed their ids
            new += s.scalars(select(Event).where(Event.id.in_(late)))
        self._seen.update(e.id for e in new)
        horizon = now - self.grace
        for event_id, created_at in window:
            if as_utc(created_at) <= horizon:
                self.floor = event_id
        self._seen = {i for i in self._seen if i > self.floor}
        return sorted(new, key=lambda e: e.id)
