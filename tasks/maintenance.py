"""Housekeeping tasks: prune dedupe receipts, beat heartbeat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import shared_task
from flask import current_app
from sqlalchemy import text

from webapp.extensions import db

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


@shared_task(name="tasks.maintenance.beat_heartbeat")
def beat_heartbeat() -> None:
    """Proves beat and a worker are alive (shown in /healthz)."""
    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES ('beat', now(), '{}') "
            "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at"
        )
    )
    db.session.commit()
