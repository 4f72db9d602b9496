"""One LISTEN connection per process, fanned out to subscriptions (one per open WebSocket).

The writer NOTIFYs `{"min_id", "max_id", "count", "received_at"}` on `pacer_messages` after each
commit (webapp/ingest/writer.py). A subscription collects those batches until its socket takes
them; the socket then runs one scoped, filtered query over exactly those id ranges.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from models.messages import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

#: A subscription that falls this far behind has its batches merged into one range.
MAX_PENDING_BATCHES = 64
_POLL_SECONDS = 5.0
_MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Batch:
    """Messages written by one commit (or several, merged): id and received_at ranges."""

    min_id: int
    max_id: int
    received_from: datetime
    received_to: datetime

    @classmethod
    def from_notification(cls, payload: str) -> Batch:
        data = json.loads(payload)
        at = datetime.fromisoformat(data["received_at"])
        return cls(int(data["min_id"]), int(data["max_id"]), at, at)

    def merge(self, other: Batch) -> Batch:
        return Batch(
            min(self.min_id, other.min_id),
            max(self.max_id, other.max_id),
            min(self.received_from, other.received_from),
            max(self.received_to, other.received_to),
        )


class Subscription:
    """Pending batches of one socket; `wait` hands them over and clears them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._batches: list[Batch] = []
        self._gap = False

    def deliver(self, batch: Batch) -> None:
        with self._cond:
            if len(self._batches) >= MAX_PENDING_BATCHES:
                merged = self._batches[0]
                for b in self._batches[1:]:
                    merged = merged.merge(b)
                self._batches = [merged]
            self._batches.append(batch)
            self._cond.notify_all()

    def mark_gap(self) -> None:
        """Notifications may have been lost (the listener reconnected)."""
        with self._cond:
            self._gap = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> tuple[list[Batch], bool]:
        """(batches, gap) collected so far, waiting up to `timeout` s for the first one."""
        with self._cond:
            if not self._batches and not self._gap:
                self._cond.wait(timeout)
            batches, gap = self._batches, self._gap
            self._batches, self._gap = [], False
            return batches, gap


class Hub:
    """The LISTEN thread of this process and its subscriptions."""

    def __init__(self, dsn: str, channel: str = NOTIFY_CHANNEL) -> None:
        self.dsn = dsn
        self.channel = channel
        self.pid = os.getpid()
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: Set while LISTEN is active (tests wait for it before writing).
        self.listening = threading.Event()

    def subscribe(self) -> Subscription:
        sub = Subscription()
        with self._lock:
            self._subs.add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="pacer-live-listen", daemon=True
                )
                self._thread.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_POLL_SECONDS + 1)

    def publish(self, batch: Batch) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.deliver(batch)

    def _mark_gap(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.mark_gap()

    def _run(self) -> None:
        backoff = 1.0
        first = True
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(self.dsn, application_name="pacer-dashboard-live")
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute(f'LISTEN "{self.channel}"')
                if not first:
                    # Batches committed while we were away were never announced to us.
                    self._mark_gap()
                first = False
                backoff = 1.0
                self.listening.set()
                logger.info("live: listening on %s (pid %s)", self.channel, self.pid)
                self._listen(conn)
            except psycopg2.Error as exc:
                self.listening.clear()
                logger.warning(
                    "live: LISTEN connection failed (%s); retrying in %.0f s", exc, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.close()

    def _listen(self, conn: Any) -> None:
        while not self._stop.is_set():
            if select.select([conn], [], [], _POLL_SECONDS) == ([], [], []):
                # Idle: a cheap round trip notices a dead connection.
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                continue
            conn.poll()
            while conn.notifies:
                note = conn.notifies.pop(0)
                try:
                    batch = Batch.from_notification(note.payload)
                except (ValueError, KeyError, TypeError):
                    logger.warning("live: ignored a malformed notification %r", note.payload[:200])
                    continue
                self.publish(batch)


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def get_hub(dsn: str) -> Hub:
    """This process's hub for `dsn` (a new one after a fork: threads do not survive it)."""
    with _hubs_lock:
        hub = _hubs.get(dsn)
        if hub is None or hub.pid != os.getpid():
            hub = _hubs[dsn] = Hub(dsn)
        return hub


def stop_hubs() -> None:
    """Stop every hub of this process (see webapp.live.fanout.stop_all)."""
    with _hubs_lock:
        hubs = list(_hubs.values())
        _hubs.clear()
    for hub in hubs:
        hub.stop()
