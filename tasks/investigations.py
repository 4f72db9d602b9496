"""Scheduled investigation check (beat, INVESTIGATION_CHECKS_CRON): a thin wrapper over the service.

Transient failures (ICAT, the PaNOSC search API or the broker unavailable) retry with exponential
backoff, a bounded number of times; the state of the investigations already checked is saved
before the retry, and a request sent less than `RESEND_AFTER` ago is not sent again.
"""

from __future__ import annotations

import logging

from celery import shared_task

from webapp.investigations.services import TransientCheckError

logger = logging.getLogger(__name__)


@shared_task(
    name="tasks.investigations.run_checks",
    autoretry_for=(TransientCheckError,),
    retry_backoff=300,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=5,
    # Network-bound: ICAT, one PSS lookup and maybe one publish per investigation.
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 60,
)
def run_checks() -> dict:
    """Check every finished investigation and ask PACER for its missing DOI / PSS item."""
    from flask import current_app

    from webapp.extensions import db
    from webapp.investigations import services
    from webapp.investigations.gateway import gateway_for
    from webapp.investigations.pss import pss_client_for

    settings = current_app.extensions["settings"]
    try:
        services.check_configuration(settings)
    except services.CheckError as exc:
        # Not configured: nothing to retry; say so once per scheduled run.
        logger.error("investigation checks skipped: %s", exc)
        return {"skipped": str(exc)}
    run = services.run_checks(
        db.session,
        settings,
        gateway=gateway_for(settings, current_app),
        pss=pss_client_for(settings),
    )
    return run.summary()
