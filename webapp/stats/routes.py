"""`/stats` and `/api/v1/stats`: tiles and charts from the rollups, in the user's scope."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import jsonify, render_template, request
from werkzeug.exceptions import Forbidden

from ..auth.scope import Scope, current_scope
from ..errors import parse_keeping_input
from ..messages.filters import datetime_local_value
from . import bp, queries
from .filters import RANGES, StatsFilter


def parse_filter(scope: Scope, args: Any = None) -> StatsFilter:
    """The request's filter; metadata-only users may not filter by instrument (an identifier)
    or error fingerprint (read from the error text): Scope.can_see."""
    flt = StatsFilter.from_args(request.args if args is None else args)
    for name in ("instrument", "fingerprint"):
        if getattr(flt, name) and not scope.can_see(name):
            raise Forbidden(f"Filtering by {name} needs a login with access to message details.")
    return flt


def page_filter(scope: Scope) -> tuple[StatsFilter, dict[str, Any]]:
    """For the HTML pages: the filter without the arguments it refused, and what the shared
    filter form shows (`refused` next to their fields, the time range in the pickers)."""
    flt, refused = parse_keeping_input(lambda args: parse_filter(scope, args), request.args)
    form = {
        "refused": refused,
        "raw_args": request.args,
        "since_input": ""
        if "since" in refused
        else datetime_local_value(request.args.get("since"), end_of_day=False),
        "until_input": ""
        if "until" in refused
        else datetime_local_value(request.args.get("until"), end_of_day=True),
    }
    return flt, form


@bp.get("/stats")
def index():
    scope = current_scope()
    flt, form = page_filter(scope)
    report = queries.stats_report(scope, flt)
    return render_template(
        "stats/index.html",
        **form,
        report=report,
        flt=flt,
        ranges=list(RANGES),
        types=queries.message_types(scope, flt),
        details=scope.can_see_details,
        top_args=replace(flt, include_acknowledged=True).message_args(),
    ), (400 if form["refused"] else 200)


@bp.get("/api/v1/stats")
def api_stats():
    """Tiles, series per type, monthly heatmap and top error groups (JSON)."""
    scope = current_scope()
    return jsonify(queries.stats_report(scope, parse_filter(scope)))
