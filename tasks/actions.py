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
    """Re-publish the messages of a bulk re-ingestion job (its audit row holds filter and progress).

    No job stays `running` once this task has ended: any failure marks it failed with the reason
    (`run_bulk_reingest` does it for what happens while it runs, this for what happens before).
    A worker killed outright runs neither: `sweep_stale_jobs` finds its job by its heartbeat.
    """
    from flask import current_app

    from webapp.actions.services import fail_job, run_bulk_reingest

    try:
        job = run_bulk_reingest(job_id, current_app.extensions["settings"])
    except BaseException as exc:
        fail_job(job_id, f"the task failed: {type(exc).__name__}: {exc}")
        raise
    return {"job_id": job_id, "outcome": job.outcome}


@shared_task(name="tasks.actions.sweep_stale_jobs")
def sweep_stale_jobs() -> dict:
    """Mark bulk re-ingestion jobs whose worker was lost (no progress for minutes) as failed."""
    from flask import current_app

    from webapp.actions.services import fail_stale_jobs

    return {"failed": fail_stale_jobs(current_app.extensions["settings"])}
