"""The /investigations page (thin view over `queries`)."""

from __future__ import annotations

from flask import abort, render_template, request

from ..auth.scope import current_scope
from . import bp, queries
from .services import FINAL_STATUSES, STATUSES


@bp.get("/investigations")
def index():
    """Every investigation check: status, DOI / PSS flags, attempts, requests sent, last error."""
    scope = current_scope()
    if not scope.details:
        # Investigation names and error texts are details (DESIGN §7): not for anonymous users.
        abort(
            403, "Log in with an account that may see message details to view investigation checks."
        )
    filters = queries.CheckFilter.from_args(request.args)
    cursor = queries.Cursor.from_args(request.args)
    limit = queries.parse_limit(request.args)
    page = queries.list_checks(filters, cursor, limit)
    return render_template(
        "investigations/index.html",
        page=page,
        filters=filters,
        counts=queries.status_counts(),
        statuses=STATUSES,
        final_statuses=FINAL_STATUSES,
        limit=limit,
    )
