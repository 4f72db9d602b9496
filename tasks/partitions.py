"""Daily partition maintenance (beat): keep current + ahead partitions, apply retention."""

from __future__ import annotations

import logging

from celery import shared_task

from webapp.extensions import db
from webapp.partitions import services

logger = logging.getLogger(__name__)


@shared_task(
    name="tasks.partitions.maintain_partitions",
    autoretry_for=(Exception,),
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=5,
)
def maintain_partitions() -> dict:
    from flask import current_app

    settings = current_app.extensions["settings"]
    with db.engine.begin() as conn:
        result = services.ensure_partitions(
            conn, months=settings.MESSAGE_PARTITION_MONTHS, ahead=settings.MESSAGE_PARTITIONS_AHEAD
        )
    dropped = []
    if settings.MESSAGE_RETENTION_MONTHS and not result.locked_out:
        with db.engine.begin() as conn:
            dropped = [
                p.name
                for p in services.drop_expired_partitions(
                    conn, retention_months=settings.MESSAGE_RETENTION_MONTHS
                )
            ]
    summary = {
        "created": result.created,
        "moved_rows": result.moved_rows,
        "skipped": result.skipped,
        "dropped": dropped,
        "locked_out": result.locked_out,
    }
    logger.info("partition maintenance: %s", summary)
    return summary
