"""Alert tasks: the rule evaluation (beat, every ALERT_EVALUATE_SECONDS) and one notice each.

The evaluation is a thin wrapper over `webapp.alerts.services.evaluate_rules` (advisory-locked,
idempotent); it commits, then queues `deliver` for every notice it recorded. `deliver` sends one
notice, retrying with exponential backoff until ALERT_DELIVERY_ATTEMPTS; every attempt is
recorded on its `alert_deliveries` row.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

from celery import shared_task

logger = logging.getLogger(__name__)

#: First retry of a failed notice after about this many seconds, doubling (at most RETRY_MAX).
RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 600
#: A notice never tried this long after it was recorded lost its task (the process died between
#: commit and queueing): the next evaluation queues it again. `deliver` locks its row and sends
#: only a pending one, so a late original task sends nothing twice.
REQUEUE_AFTER = timedelta(hours=1)


@shared_task(name="tasks.alerts.evaluate_rules", soft_time_limit=50, time_limit=58)
def evaluate_rules() -> dict:
    """Evaluate every enabled alert rule; open / resolve incidents; queue their notices."""
    from flask import current_app
    from sqlalchemy import select

    from models import Delivery
    from webapp.alerts import services
    from webapp.extensions import db

    settings = current_app.extensions["settings"]
    run = services.evaluate_rules(db.session, settings)
    db.session.commit()
    stale = db.session.scalars(
        select(Delivery.id).where(
            Delivery.status == "pending",
            # Never tried: a notice being retried has its own task chain (and countdown).
            Delivery.attempts == 0,
            Delivery.created_at < datetime.now(UTC) - REQUEUE_AFTER,
        )
    ).all()
    db.session.commit()
    for delivery_id in [*run.deliveries, *stale]:
        deliver.delay(delivery_id)
    if run.opened or run.resolved or run.errors:
        logger.info("alert evaluation: %s", run.summary())
    return run.summary()


@shared_task(
    name="tasks.alerts.deliver",
    bind=True,
    max_retries=None,
    # Network-bound: one SMTP session or one HTTP request, each with its own timeout.
    soft_time_limit=120,
    time_limit=150,
)
def deliver(self, delivery_id: int) -> str:
    """Send one alert notice (e-mail or webhook) and record the outcome; retried with backoff."""
    from flask import current_app

    from webapp.alerts import notify
    from webapp.extensions import db

    settings = current_app.extensions["settings"]
    final = self.request.retries + 1 >= settings.ALERT_DELIVERY_ATTEMPTS
    try:
        status = notify.deliver(db.session, settings, delivery_id, final_attempt=final)
    except notify.DeliveryFailed as exc:
        db.session.commit()  # the attempt and its reason are kept
        delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=delay * random.uniform(0.8, 1.2)) from exc  # noqa: S311
    db.session.commit()
    return status
