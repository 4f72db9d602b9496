"""`/stats` and `/api/v1/stats`: tiles and charts from the rollups, in the user's scope."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import jsonify, render_template

from ..apidoc import api_doc, error, json_ok
from ..auth.scope import Scope, current_scope
from ..errors_view import queries as error_queries
from . import bp, queries
from .filters import RANGES, StatsFilter, page_filter, parse_filter
from .openapi import STATS_PARAMETERS

#: How many error groups /stats shows.
TOP_ERROR_GROUPS = 10


def _report(scope: Scope, flt: StatsFilter) -> dict[str, Any]:
    """Everything /stats shows (and /api/v1/stats returns). Its top error groups count
    acknowledged errors too, like its error tiles: /stats shows what failed; /errors is where
    open causes are worked on."""
    report = queries.stats_report(scope, flt)
    groups = error_queries.error_groups(
        scope, replace(flt, include_acknowledged=True), limit=TOP_ERROR_GROUPS
    )
    report["top_error_groups"] = [g.as_json(scope) for g in groups]
    return report


@bp.get("/stats")
def index():
    scope = current_scope()
    flt, form = page_filter(scope)
    with queries.serial_plans(scope):
        report = _report(scope, flt)
        types = queries.message_types(scope, flt)
    return render_template(
        "stats/index.html",
        **form,
        report=report,
        flt=flt,
        ranges=list(RANGES),
        types=types,
        top_args=replace(flt, include_acknowledged=True).message_args(),
    ), (400 if form["refused"] else 200)


@bp.get("/api/v1/stats")
@api_doc(
    operation_id="getStats",
    summary="Tiles, series per type, monthly heatmap and top error groups",
    parameters=STATS_PARAMETERS,
    responses={
        "200": json_ok("The statistics of the filter, in the caller's scope"),
        "400": error("A filter argument is not valid (or not available here)"),
        "403": error("The filter needs access to message details"),
    },
)
def api_stats():
    """Tiles, series per type, monthly heatmap and top error groups (JSON)."""
    scope = current_scope()
    flt = parse_filter(scope)
    with queries.serial_plans(scope):
        report = _report(scope, flt)
    return jsonify(report)
