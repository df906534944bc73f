"""Closed events into the store: one transaction each, retried while the database refuses
them, and the intervals they touched remembered for the next roll-up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.models import LIVE_SOURCE
from edge_agent.text import plural

if TYPE_CHECKING:
    from edge_agent.counting.events import ClosedEvent

log = logging.getLogger("trapcount.service")

MAX_PENDING_EVENTS = 10_000
# Events the database refused are written again at the end of a run, this many times,
# this far apart (a database locked by a long report, a disk that filled for a moment).
END_RETRIES = 3
END_RETRY_DELAY_S = 1.0


def describe_event(event: ClosedEvent) -> str:
    labels = ", ".join(f"{o.label} x{o.max_n}" for o in event.observations) or "nothing"
    seconds = (event.end - event.start).total_seconds()
    return f"{event.start.isoformat(timespec='seconds')} +{seconds:.1f}s: {labels}"


class EventSink:
    """Writes closed events one transaction each; keeps the ones a failing database
    refused and retries them before the next; remembers the time range to roll up.

    ``origin``: the identity of the file an event's first frame came from (a source's
    ``origin_of``), stored as the event's ``source_key`` so that a rerun of ``process``
    replaces the events of the same footage and nothing else; None (a live camera) is
    ``live``. ``retry_note``: what the error line promises about events a write failed on.
    ``remember_ids``: keep the ids of the events written (``event_ids``: a run of
    ``process`` reports them and replaces stale ones); the service, which runs for months,
    does not, so that nothing grows with the events.
    """

    def __init__(
        self,
        store: Store,
        deployment_id: int,
        on_written: Callable[[ClosedEvent, int], None] | None = None,
        *,
        origin: Callable[[datetime], str | None] | None = None,
        retry_note: str = "kept in memory and retried before the next write",
        remember_ids: bool = True,
    ) -> None:
        self.store = store
        self.deployment_id = deployment_id
        self.on_written = on_written
        self.origin = origin
        self.retry_note = retry_note
        self.written = 0
        self.remember_ids = remember_ids
        self.event_ids: list[int] = []
        self._pending: list[ClosedEvent] = []
        self._dirty: tuple[datetime, datetime] | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def source_key(self, event: ClosedEvent) -> str:
        return self._key_at(event.start)

    def write(self, events: Iterable[ClosedEvent]) -> int:
        with self._lock:
            self._pending.extend(events)
            written = 0
            while self._pending:
                event = self._pending[0]
                try:
                    event_id = self.store.write_event(
                        event, self.deployment_id, source_key=self.source_key(event)
                    )
                except StoreError as exc:
                    waiting = plural(len(self._pending), "event")
                    log.error("%s; %s %s", exc, waiting, self.retry_note)
                    del self._pending[:-MAX_PENDING_EVENTS]
                    break
                self._pending.pop(0)
                if self.remember_ids:
                    self.event_ids.append(event_id)
                self._mark_dirty(event.start)
                written += 1
                log.info("event %d: %s", event_id, describe_event(event))
                if self.on_written is not None:
                    try:
                        self.on_written(event, event_id)
                    except Exception as exc:  # media must never stop the counting
                        log.error("media of event %d not kept: %s", event_id, exc)
            self.written += written
            return written

    def write_unprocessed(self, items: Iterable[tuple[datetime, str]]) -> int:
        """Record frames that could not be counted, ``(time, reason)`` each, under the
        footage they came from; a failing database is logged (counting goes on). Returns
        how many rows are new."""
        rows = [(time, self._key_at(time), reason) for time, reason in items]
        if not rows:
            return 0
        try:
            return self.store.record_unprocessed(self.deployment_id, rows)
        except StoreError as exc:
            log.error("%s; %s not recorded", exc, plural(len(rows), "unprocessed frame"))
            return 0

    def _key_at(self, time: datetime) -> str:
        key = self.origin(time) if self.origin is not None else None
        return key or LIVE_SOURCE

    def mark_dirty(self, since: datetime, until: datetime) -> None:
        """Have the next roll-up recompute the intervals of [since, until] too."""
        with self._lock:
            self._mark_dirty(since)
            self._mark_dirty(until)

    def _mark_dirty(self, start: datetime) -> None:
        if self._dirty is None:
            self._dirty = (start, start)
        else:
            self._dirty = (min(self._dirty[0], start), max(self._dirty[1], start))

    def rollup(self, minutes: int) -> int:
        """Recompute the counts of the intervals that got new events; 0 when none did."""
        with self._lock:
            dirty, self._dirty = self._dirty, None
        if dirty is None:
            return 0
        try:
            return self.store.rollup(
                dirty[1] + timedelta(microseconds=1),
                since=dirty[0],
                minutes=minutes,
                deployment_id=self.deployment_id,
            )
        except StoreError:
            with self._lock:  # try those intervals again next time
                for moment in dirty:
                    self._mark_dirty(moment)
            raise


def retry_pending(sink: EventSink) -> None:
    """At the end of a run: write the events the database refused, ``END_RETRIES`` times."""
    for _attempt in range(END_RETRIES):
        if not sink.pending:
            return
        time.sleep(END_RETRY_DELAY_S)
        sink.write(())
