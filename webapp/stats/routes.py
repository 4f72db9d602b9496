"""`/stats` and `/api/v1/stats`: tiles and charts from the rollups, in the user's scope."""

from __future__ import annotations

from dataclasses import replace

from flask import jsonify, render_template, request
from werkzeug.exceptions import Forbidden

from ..auth.scope import Scope, current_scope
from . import bp, queries
from .filters import RANGES, StatsFilter


def parse_filter(scope: Scope) -> StatsFilter:
    """The request's filter; metadata-only users may not filter by instrument (an identifier)
    or error fingerprint (read from the error text): Scope.can_see."""
    flt = StatsFilter.from_args(request.args)
    for name in ("instrument", "fingerprint"):
        if getattr(flt, name) and not scope.can_see(name):
            raise Forbidden(f"Filtering by {name} needs a login with access to message details.")
    return flt


@bp.get("/stats")
def index():
    scope = current_scope()
    flt = parse_filter(scope)
    report = queries.stats_report(scope, flt)
    return render_template(
        "stats/index.html",
        report=report,
        flt=flt,
        ranges=list(RANGES),
        types=queries.message_types(scope, flt),
        details=scope.can_see_details,
        top_args=replace(flt, include_acknowledged=True).message_args(),
    )


@bp.get("/api/v1/stats")
def api_stats():
    """Tiles, series per type, monthly heatmap and top error groups (JSON)."""
    scope = current_scope()
    return jsonify(queries.stats_report(scope, parse_filter(scope)))
