"""The /investigations page (thin view over `queries`) and the administrators' dry run."""

from __future__ import annotations

import logging

from flask import abort, current_app, render_template, request

from models.investigations import FINAL_STATUSES, STATUSES

from ..auth.scope import Scope, current_scope
from ..extensions import db
from . import bp, queries, services
from .gateway import gateway_for
from .pss import pss_client_for

logger = logging.getLogger(__name__)


def _settings():
    return current_app.extensions["settings"]


def _require_details(scope: Scope) -> None:
    if not scope.details:
        # Investigation names and error texts are details (DESIGN §7): not for anonymous users.
        abort(
            403, "Log in with an account that may see message details to view investigation checks."
        )


@bp.get("/investigations")
def index():
    """Every investigation check: status, DOI / PSS flags, attempts, requests sent, last error;
    what configuration is missing and when the next scheduled run starts."""
    scope = current_scope()
    _require_details(scope)
    filters = queries.CheckFilter.from_args(request.args)
    cursor = queries.Cursor.from_args(request.args)
    limit = queries.parse_limit(request.args)
    page = queries.list_checks(filters, cursor, limit)
    settings = _settings()
    return render_template(
        "investigations/index.html",
        page=page,
        filters=filters,
        counts=queries.status_counts(),
        statuses=STATUSES,
        final_statuses=FINAL_STATUSES,
        limit=limit,
        missing=services.missing_configuration(settings),
        schedule=settings.INVESTIGATION_CHECKS_CRON,
        next_run=services.next_scheduled_run(settings),
        can_dry_run=scope.is_admin,
    )


@bp.post("/investigations/dry-run")
def dry_run():
    """Administrators: run the check now as a dry run (ICAT and the PSS are asked; nothing is
    published, nothing saved) and show what it found and would request."""
    scope = current_scope()
    if not scope.is_admin:
        abort(403, "Only administrators may run the investigation check.")
    settings = _settings()
    error = None
    run = None
    try:
        services.check_configuration(settings)
        run = services.run_checks(
            db.session,
            settings,
            gateway=gateway_for(settings, current_app),
            pss=pss_client_for(settings),
            dry_run=True,
        )
    except services.CheckError as exc:
        error = str(exc)
    except services.TransientCheckError as exc:
        error = str(exc)
        run = exc.run
    except Exception as exc:  # noqa: BLE001 - shown to the administrator, never a 500
        logger.exception("investigation dry run failed")
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    logger.info("investigation dry run by %s: %s", scope.actor, run.summary() if run else error)
    template = (
        "investigations/_dry_run.html"
        if request.headers.get("HX-Request") == "true"
        else "investigations/dry_run.html"
    )
    # A failed or impossible run is this request's result (shown), not an HTTP error.
    return render_template(template, run=run, error=error)
