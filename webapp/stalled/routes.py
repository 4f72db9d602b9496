"""`/stalled` and `/api/v1/stalled`: pipeline runs that did not complete in time (thin views)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request

from ..apidoc import api_doc, error, json_ok
from ..auth.scope import Scope, current_scope
from ..errors import parse_keeping_input
from . import bp, presenters, queries
from .filters import MAX_DAYS, STATES, StalledFilter
from .openapi import STALLED_PARAMETERS


def parse_filter(scope: Scope, args: Any = None) -> StalledFilter:
    """The request's filter; metadata-only users may not filter by identifiers
    (Scope.check_filters)."""
    flt = StalledFilter.from_args(request.args if args is None else args)
    queries.check_stage(flt.stage)
    scope.check_filters(flt)
    return flt


@bp.get("/stalled")
def index():
    """Stalled pipeline runs grouped by the stage they stopped at."""
    scope = current_scope()
    flt, refused = parse_keeping_input(lambda args: parse_filter(scope, args), request.args)
    report = queries.list_stalled(scope, flt)
    return render_template(
        "stalled/index.html",
        report=report,
        flt=flt,
        refused=refused,
        raw_args=request.args,
        stages=queries.stages(),
        states=STATES,
        max_days=MAX_DAYS,
        identifiers={name: scope.can_see(name) for name in presenters.IDENTIFIERS},
        links=presenters.Links(),
    ), (400 if refused else 200)


@bp.get("/api/v1/stalled")
@api_doc(
    operation_id="listStalledRuns",
    summary="Pipeline runs that started but did not complete in time, by stage",
    description="A run is the reports of one pipeline sharing a hash within the window; stalled "
    "when its last stage has not succeeded and its first report is older than "
    "STALLED_AFTER_MINUTES (or its pipeline's STALLED_AFTER_BY_PIPELINE). Identifiers are left "
    "out without details access.",
    parameters=STALLED_PARAMETERS,
    responses={
        "200": json_ok("Groups by stage (`groups`, each with `count` and `runs`)"),
        "400": error("A filter argument is not valid"),
        "403": error("The filter needs access to message details"),
    },
)
def api_stalled():
    """Stalled runs (JSON), grouped by stage, in the caller's scope."""
    scope = current_scope()
    report = queries.list_stalled(scope, parse_filter(scope))
    return jsonify(presenters.report_fields(report, scope))
