"""Celery beat's scheduler (`beat_scheduler` in celeryconfig.py): beat writes its own heartbeat.

The heartbeat used to be a task that beat scheduled and a worker ran, so a worker that did not
consume its task queue made /healthz say "no beat heartbeat" about a beat that was fine. Now the
beat process writes row `beat` itself, from the scheduler's tick, without any worker; the
heartbeat task (row `tasks`, tasks/maintenance.py) proves the other half: that a worker runs
the tasks beat sends.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta

from celery.beat import PersistentScheduler

from webapp.health import heartbeats

logger = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    """PersistentScheduler whose tick writes row `beat` at most every BEAT_INTERVAL_SECONDS (and
    wakes at least that often to do so), with each schedule entry's last and next run."""

    def __init__(self, *args, **kwargs):
        self._heartbeat_at = 0.0  # monotonic time of the last attempt; 0 = never
        self._heartbeat_store: heartbeats.HeartbeatStore | None = None
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        delay = super().tick(*args, **kwargs)
        now = time.monotonic()
        interval = heartbeats.BEAT_INTERVAL_SECONDS
        if not self._heartbeat_at or now - self._heartbeat_at >= interval:
            self._heartbeat_at = now
            self.write_heartbeat()
        return max(0.0, min(delay, self._heartbeat_at + interval - now))

    def write_heartbeat(self) -> bool:
        """Upsert row `beat`; never raises (beat keeps scheduling when the database is away)."""
        store = self._store_for_heartbeat()
        if store is None:
            return False
        try:
            detail = self.heartbeat_detail()
        except Exception:  # noqa: BLE001 - a broken entry must not stop beat
            logger.exception("beat heartbeat: reading the schedule failed")
            detail = {"schedule_error": True}
        return store.write(heartbeats.BEAT, detail)

    def heartbeat_detail(self) -> dict:
        """Who beats, and every schedule entry's task, last run and next run (UTC, ISO 8601)."""
        now = self.app.now()
        entries = []
        for name, entry in sorted(self.schedule.items()):
            ran = bool(entry.total_run_count) and entry.last_run_at is not None
            try:
                remaining = entry.schedule.remaining_estimate(entry.last_run_at)
                next_run = now + max(remaining, timedelta(0))
            except Exception:  # noqa: BLE001 - an odd schedule type: show the entry anyway
                next_run = None
            entries.append(
                {
                    "name": name,
                    "task": entry.task,
                    "schedule": str(entry.schedule),
                    "last_run_at": entry.last_run_at.isoformat() if ran else None,
                    "next_run_at": next_run.isoformat() if next_run else None,
                    "runs": entry.total_run_count,
                }
            )
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "interval_seconds": heartbeats.BEAT_INTERVAL_SECONDS,
            "schedule": entries,
        }

    def _store_for_heartbeat(self) -> heartbeats.HeartbeatStore | None:
        if self._heartbeat_store is None:
            flask_app = getattr(self.app, "flask_app", None)
            if flask_app is None:
                return None
            settings = flask_app.extensions["settings"]
            self._heartbeat_store = heartbeats.HeartbeatStore(
                lambda: heartbeats.connect(settings, "pacer-dashboard-beat"),
                retry_seconds=heartbeats.BEAT_RETRY_SECONDS,
            )
        return self._heartbeat_store

    def close(self) -> None:
        # The row stays: one beat must always run, so a stopped beat is a problem to report.
        if self._heartbeat_store is not None:
            self._heartbeat_store.close()
        super().close()
