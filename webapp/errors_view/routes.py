"""`/errors` and `/api/v1/error-groups`: errors grouped by cause, in the user's scope (by message
type only for a scope without details: the cause is read from the error text).

Reads come from webapp.errors_view.queries (the error rollups); bulk acknowledge / re-ingest of a group are
the actions area's endpoints (`actions.bulk_acknowledge`, `actions.bulk_reingest`), reached with
the group's fingerprint and this page's filter: they show the exact preview count and ask for a
confirmation.
"""

from __future__ import annotations

from flask import jsonify, render_template, request

from ..apidoc import api_doc, error, json_ok, query
from ..auth.scope import current_scope
from ..errors import InvalidFilter
from ..stats import queries as stats_queries
from ..stats.filters import RANGES, page_filter, parse_filter
from ..stats.openapi import STATS_PARAMETERS
from . import bp, queries

DEFAULT_LIMIT = 100


def _limit() -> int:
    raw = (request.args.get("limit") or "").strip()
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= queries.MAX_GROUPS:
        raise InvalidFilter(
            f"limit must be a number from 1 to {queries.MAX_GROUPS}.", field="limit"
        )
    return int(raw)


def _pairs(args: dict) -> list[tuple[str, str]]:
    out = []
    for key, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            out.append((key, item))
    return out


@bp.get("/errors")
def index():
    scope = current_scope()
    flt, form = page_filter(scope)
    limit = DEFAULT_LIMIT
    try:
        limit = _limit()
    except InvalidFilter as exc:
        form["refused"][exc.field] = exc.message
    groups = queries.error_groups(scope, flt, limit=limit)
    sparklines = queries.group_series(scope, flt, [g.key for g in groups])
    return render_template(
        "errors/index.html",
        **form,
        groups=groups,
        flt=flt,
        ranges=list(RANGES),
        types=stats_queries.message_types(scope, flt),
        list_args=flt.message_args(),
        action_fields=_pairs(flt.message_args()),
        can_acknowledge=scope.can_acknowledge(),
        can_reingest=scope.can_see("payload") and scope.can_reingest(),
        sparklines=sparklines,
    ), (400 if form["refused"] else 200)


@bp.get("/api/v1/error-groups")
@api_doc(
    operation_id="listErrorGroups",
    summary="Error groups in scope and filter, most frequent first",
    parameters=STATS_PARAMETERS
    + [query("limit", "How many groups.", {"type": "integer", "minimum": 1})],
    responses={
        "200": json_ok("The groups (`items`), the filter and the data source"),
        "400": error("A filter argument or limit is not valid"),
        "403": error("The filter needs access to message details"),
    },
)
def api_error_groups():
    """Error groups in scope and filter, most frequent first (JSON)."""
    scope = current_scope()
    flt = parse_filter(scope)
    groups = queries.error_groups(scope, flt, limit=_limit())
    return jsonify(
        {
            "filter": flt.as_json(),
            "source": "rollups" if stats_queries.answers_from_rollups(scope) else "messages",
            "items": [g.as_json(scope) for g in groups],
        }
    )
