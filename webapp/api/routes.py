"""`/api/v1/messages` (JSON or streamed CSV), `/api/v1/messages/<id>`, its trace, the OpenAPI
document. Every read goes through `webapp.messages.queries` with the caller's scope."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import (
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from ..apidoc import api_doc, error, json_ok, ref
from ..auth.scope import Scope, current_scope
from ..errors import InvalidFilter
from ..messages import presenters, queries
from ..messages.filters import MessageFilter
from . import bp
from .openapi import FILTER_PARAMETERS, PAGE_PARAMETERS, openapi_document

FORMATS = ("json", "csv")


@bp.get("/messages")
@api_doc(
    operation_id="listMessages",
    summary="Messages, newest first, with keyset pagination; or CSV export",
    parameters=FILTER_PARAMETERS + PAGE_PARAMETERS,
    responses={
        "200": {
            "description": "A page of messages (or the CSV file)",
            "content": {
                "application/json": {"schema": ref("MessagePage")},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        "400": error("A filter, cursor or limit is not valid"),
        "403": error("The filter needs access to message details"),
    },
)
def list_messages():
    """A page of messages (JSON) or every matching message (`format=csv`, streamed)."""
    scope = current_scope()
    filters = MessageFilter.from_args(request.args)
    fmt = (request.args.get("format") or "json").strip().lower()
    if fmt not in FORMATS:
        raise InvalidFilter(f"Unknown format {fmt!r}: use json or csv.", field="format")
    cursor = queries.Cursor.from_args(request.args)
    limit = queries.parse_limit(request.args)
    scope.check_filters(filters)
    if fmt == "csv":
        return _csv_response(scope, filters)
    page = queries.list_messages(scope, filters, cursor, limit)
    count = queries.count_messages(scope, filters)
    return jsonify(
        {
            "items": [_jsonable(_with_links(presenters.summary(r, scope))) for r in page.rows],
            "count": count.value,
            "count_exact": count.exact,
            "limit": limit,
            "cursors": {
                "older": page.older.encode() if page.older else None,
                "newer": page.newer.encode() if page.newer else None,
            },
            "links": {
                "older": _page_url(filters, page.older, limit),
                "newer": _page_url(filters, page.newer, limit),
            },
        }
    )


@bp.get("/messages/<int:message_id>")
@api_doc(
    operation_id="getMessage",
    summary="One message with payload, errors and tracebacks",
    responses={
        "200": json_ok("The message", ref("Message")),
        "404": error("Unknown message, or not visible to the caller"),
    },
)
def get_message(message_id: int):
    """One message with payload, errors and tracebacks (when the scope shows details)."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    return jsonify(_jsonable(_with_links(presenters.detail(message, scope))))


@bp.get("/messages/<int:message_id>/trace")
@api_doc(
    operation_id="traceMessage",
    summary="The pipeline stages around one message, in order",
    responses={
        "200": json_ok("The trace", ref("Trace")),
        "404": error("Unknown message, or not visible to the caller"),
    },
)
def trace_message(message_id: int):
    """The pipeline stages around one message, in order, with their state."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    pipeline = current_app.extensions["settings"].pipeline_for(message.message_type)
    trace = queries.trace_message(scope, message, pipeline)
    return jsonify(
        _jsonable(
            {
                "message_id": message.id,
                "stages": [
                    {
                        "stage": s.number,
                        "message_type": s.message_type,
                        "state": s.state,
                        "attempts": [presenters.summary(r, scope) for r in s.attempts],
                    }
                    for s in trace.stages
                ],
                "related": [presenters.summary(r, scope) for r in trace.related],
                "truncated": trace.truncated,
            }
        )
    )


@bp.get("/openapi.json")
@api_doc(
    operation_id="openapi",
    summary="This document",
    responses={"200": json_ok("OpenAPI 3.1")},
)
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document())


# ---- CSV ------------------------------------------------------------------------------------------
def _csv_response(scope: Scope, filters: MessageFilter) -> Response:
    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(presenters.csv_columns(scope))
        rows = queries.iter_messages(scope, filters, columns=presenters.CSV_QUERY_COLUMNS)
        for n, row in enumerate(presenters.csv_rows(rows, scope), 1):
            writer.writerow(row)
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")  # noqa: DTZ005 - a file name only
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="messages-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        },
    )


# ---- helpers --------------------------------------------------------------------------------------
def _with_links(item: dict[str, Any]) -> dict[str, Any]:
    item["links"] = {
        "self": url_for("api.get_message", message_id=item["id"]),
        "html": url_for("messages.detail", message_id=item["id"]),
        "trace": url_for("api.trace_message", message_id=item["id"]),
    }
    return item


def _page_url(filters: MessageFilter, cursor: Any, limit: int) -> str | None:
    if cursor is None:
        return None
    return url_for("api.list_messages", cursor=cursor.encode(), limit=limit, **filters.url_args())


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 (Flask's default would be an HTTP date), recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@bp.get("/docs")
@api_doc(
    operation_id="docs",
    summary="This document, browsable (Swagger UI)",
    responses={
        "200": {
            "description": "An HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
def docs():
    """Interactive documentation (Swagger UI, vendored) of this API."""
    return render_template("api/docs.html")
