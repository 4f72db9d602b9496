"""Housekeeping tasks: prune dedupe receipts, the task-queue heartbeat."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from celery import shared_task
from flask import current_app
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from webapp.extensions import db
from webapp.health import heartbeats

logger = logging.getLogger(__name__)


@shared_task(name="tasks.maintenance.prune_receipts")
def prune_receipts() -> int:
    """Delete dedupe receipts older than DEDUPE_WINDOW_DAYS, in chunks."""
    days = current_app.extensions["settings"].DEDUPE_WINDOW_DAYS
    cutoff = datetime.now(UTC) - timedelta(days=days)
    total = 0
    while True:
        deleted = db.session.execute(
            text(
                "DELETE FROM report_receipts WHERE report_id IN (SELECT report_id FROM "
                "report_receipts WHERE received_at < :cutoff LIMIT 10000)"
            ),
            {"cutoff": cutoff},
        ).rowcount
        db.session.commit()
        total += deleted
        if deleted < 10000:
            break
    logger.info("pruned %d receipts older than %d days", total, days)
    return total


@shared_task(bind=True, name="tasks.maintenance.tasks_heartbeat")
def tasks_heartbeat(self) -> None:
    """Proves a worker consumes the task queue: beat sends it every minute, a worker runs it and
    writes row `tasks` (beat's own liveness is row `beat`, written by beat itself)."""
    _write_tasks_heartbeat(self.request.hostname)


@shared_task(bind=True, name="tasks.maintenance.beat_heartbeat")
def beat_heartbeat(self) -> None:
    """Former name of tasks_heartbeat, still accepted from a beat of the previous release."""
    _write_tasks_heartbeat(self.request.hostname)


def _write_tasks_heartbeat(worker: str | None) -> None:
    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES (:name, now(), :detail) "
            "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at, detail = EXCLUDED.detail"
        ).bindparams(bindparam("detail", type_=JSONB)),
        {"name": heartbeats.TASKS, "detail": {"worker": worker, "pid": os.getpid()}},
    )
    # Workers that vanished without stopping (killed, host lost) are reported by /healthz for
    # WORKER_FORGET_SECONDS; their rows go after a day.
    db.session.execute(
        text("DELETE FROM heartbeats WHERE name LIKE :prefix AND at < now() - interval '1 day'"),
        {"prefix": heartbeats.WORKER_PREFIX + "%"},
    )
    db.session.commit()
