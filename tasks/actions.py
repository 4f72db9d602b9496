"""Operator actions that run in the background: bulk re-ingestion with progress and a rate limit."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="tasks.actions.bulk_reingest",
    # Long jobs at a low rate: well past the global limits. A redelivered job finds its audit
    # row no longer `pending` and does not publish twice.
    time_limit=24 * 3600 + 60,
    soft_time_limit=24 * 3600,
)
def bulk_reingest(job_id: int) -> dict:
    """Re-publish the messages of a bulk re-ingestion job (its audit row holds filter and progress)."""
    from flask import current_app

    from webapp.actions.services import run_bulk_reingest

    job = run_bulk_reingest(job_id, current_app.extensions["settings"])
    return {"job_id": job_id, "outcome": job.outcome}
