"""Heartbeat rows (`heartbeats`) written by the worker and beat processes themselves.

Each process names its own row, so /healthz can tell them apart and never blame a bystander:

    beat              the beat process, from its scheduler's tick (tasks/beat.py): the schedule
                      with every entry's last and next run
    worker:<node>     each worker, from a daemon thread started by the report consumer step
                      (tasks/ingest.py): reports held unacked, last batch, whether it is ready
    tasks             the heartbeat *task*: scheduled by beat, run by a worker from the task queue,
                      so a fresh row proves the task queue is consumed (tasks/maintenance.py)
    ingest:<host>:<pid>  written with every committed batch, in the batch's transaction
                      (webapp/ingest/writer.py): the last ingest and /metrics' batch figures

Writers use their own short psycopg2 connection and never raise: a heartbeat that cannot be written
is logged and tried again at the next beat, the process carries on. `at` is the database's clock,
so ages are compared on one clock whatever the hosts' clocks say.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg2

logger = logging.getLogger(__name__)

BEAT = "beat"
TASKS = "tasks"
WORKER_PREFIX = "worker:"
INGEST_PREFIX = "ingest:"

#: How often a worker writes its row (and at most once a second more after a committed batch).
WORKER_INTERVAL_SECONDS = 10.0
#: How often beat writes its row (from its scheduler's tick, which wakes at least this often).
BEAT_INTERVAL_SECONDS = 15.0
#: After a failed write, wait this long before connecting again (beat's tick must not stall on
#: a database that is away; a worker's heartbeat thread has nothing else to do).
BEAT_RETRY_SECONDS = 30.0
WORKER_RETRY_SECONDS = 5.0


def connect(settings, application_name: str):
    """A short-timeout autocommit connection for heartbeat writes."""
    conn = psycopg2.connect(
        host=settings.POSTGRES_HOST,
        port=settings.POSTGRES_PORT,
        dbname=settings.POSTGRES_DB,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PASSWORD or None,
        application_name=application_name,
        connect_timeout=5,
        # A heartbeat must never wait long on a lock or a busy server.
        options="-c statement_timeout=5000",
    )
    conn.autocommit = True
    return conn


class HeartbeatStore:
    """Upserts and deletes one process's heartbeat rows over one lazily opened connection."""

    def __init__(self, connect: Callable[[], Any], retry_seconds: float = WORKER_RETRY_SECONDS):
        self._connect = connect
        self.retry_seconds = retry_seconds
        self._conn = None
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._retry_at = 0.0

    def write(self, name: str, detail: dict) -> bool:
        """Upsert row `name` (at = the database's now()); False when it could not be written."""
        return self._execute(
            "INSERT INTO heartbeats (name, at, detail) VALUES (%s, now(), %s::jsonb) "
            "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at, detail = EXCLUDED.detail",
            (name, json.dumps(detail, default=str)),
            name,
        )

    def delete(self, name: str) -> bool:
        """Remove row `name` (a process that stops on purpose is not missing)."""
        self._retry_at = 0.0
        return self._execute("DELETE FROM heartbeats WHERE name = %s", (name,), name)

    def _execute(self, sql: str, params: tuple, name: str) -> bool:
        with self._lock:
            if self._failing_since is not None and time.monotonic() < self._retry_at:
                return False
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                with self._conn.cursor() as cur:
                    cur.execute(sql, params)
            except psycopg2.Error as exc:
                self._close()
                first = self._failing_since is None
                if first:
                    self._failing_since = time.monotonic()
                self._retry_at = time.monotonic() + self.retry_seconds
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                (logger.warning if first else logger.debug)(
                    "heartbeat %s not written (%s); next try in %.0f s",
                    name,
                    text,
                    self.retry_seconds,
                )
                return False
            if self._failing_since is not None:
                logger.info(
                    "heartbeat %s written again after %.0f s",
                    name,
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
            return True

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


class HeartbeatThread(threading.Thread):
    """Writes row `name` with `snapshot()` every `interval` seconds from its own thread, so a
    process whose main loop is stuck (or not started yet) still reports what it holds.

    `poke()` asks for an early write (at most once a second), e.g. after a committed batch.
    """

    def __init__(
        self,
        name: str,
        snapshot: Callable[[], dict],
        store: HeartbeatStore,
        interval: float = WORKER_INTERVAL_SECONDS,
    ):
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.row = name
        self.snapshot = snapshot
        self.store = store
        self.interval = interval
        self._poked = threading.Event()
        self._stopping = threading.Event()

    def poke(self) -> None:
        self._poked.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            written_at = time.monotonic()
            self.beat()
            if self._poked.wait(self.interval):
                # Rate limit: a burst of batches writes once a second, not once per batch.
                if self._stopping.wait(max(0.0, written_at + 1.0 - time.monotonic())):
                    return
                self._poked.clear()

    def beat(self) -> bool:
        try:
            detail = self.snapshot()
        except Exception:  # noqa: BLE001 - a broken snapshot must not end the heartbeat
            logger.exception("heartbeat %s: snapshot failed", self.row)
            detail = {"snapshot_error": True}
        return self.store.write(self.row, detail)

    def stop(self, delete: bool = True, timeout: float = 5.0) -> None:
        """Stop writing; remove the row when the process stops on purpose."""
        self._stopping.set()
        self._poked.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        if delete:
            self.store.delete(self.row)
        self.store.close()
