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

from models import Message
from models.identifiers import PROMOTED_IDENTIFIERS

from ..auth.scope import current_scope
from ..errors import InvalidFilter
from ..messages import presenters, queries
from ..messages.filters import MessageFilter
from . import bp
from .openapi import openapi_document

FORMATS = ("json", "csv")


@bp.get("/messages")
def list_messages():
    """A page of messages (JSON) or every matching message (`format=csv`, streamed)."""
    scope = current_scope()
    filters = MessageFilter.from_args(request.args)
    fmt = (request.args.get("format") or "json").strip().lower()
    if fmt not in FORMATS:
        raise InvalidFilter(f"Unknown format {fmt!r}: use json or csv.", field="format")
    cursor = queries.Cursor.from_args(request.args)
    limit = queries.parse_limit(request.args)
    queries.check_filters_allowed(scope, filters)
    if fmt == "csv":
        return _csv_response(scope, filters)
    page = queries.list_messages(scope, filters, cursor, limit)
    count = queries.count_messages(scope, filters)
    return jsonify(
        {
            "items": [
                _jsonable(_with_links(presenters.summary(r, scope.details))) for r in page.rows
            ],
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
def get_message(message_id: int):
    """One message with payload, errors and tracebacks (when the scope shows details)."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    body = _with_links(presenters.summary(message, scope.details))
    if scope.details:
        body.update(
            payload=message.payload,
            error_message=message.error_message,
            traceback=message.traceback,
            extra=message.extra or {},
            errors=[
                {"callback": e.callback, "text": e.text, "traceback": e.traceback}
                for e in presenters.error_entries(message.error_message, message.traceback)
            ],
        )
    return jsonify(_jsonable(body))


@bp.get("/messages/<int:message_id>/trace")
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
                        "attempts": [presenters.summary(r, scope.details) for r in s.attempts],
                    }
                    for s in trace.stages
                ],
                "related": [presenters.summary(r, scope.details) for r in trace.related],
                "truncated": trace.truncated,
            }
        )
    )


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document())


# ---- CSV ------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "id",
    "received_at",
    "processing_start",
    "processing_end",
    "processing_ms",
    "message_type",
    "status",
    "acknowledged",
    "exchange_name",
    "routing_key",
    "hash",
    "payload_format",
    "report_id",
)
#: The promoted identifiers (models/identifiers.py), then what is read from the error text.
CSV_DETAIL_COLUMNS = (*PROMOTED_IDENTIFIERS, "error_summary", "error_fingerprint")


#: What the export reads, in CSV_COLUMNS (+ CSV_DETAIL_COLUMNS) order: no identifiers object
#: (the CSV has the promoted identifier columns), so no jsonb is decoded that the file omits.
_CSV_QUERY_COLUMNS = (
    Message.id,
    Message.received_at,
    Message.processing_start,
    Message.processing_end,
    Message.processing_ms,
    Message.message_type,
    Message.errored,
    Message.acknowledged_at,
    Message.exchange_name,
    Message.routing_key,
    Message.hash,
    Message.payload_format,
    Message.report_id,
    *(getattr(Message, name) for name in PROMOTED_IDENTIFIERS),
    Message.error_message,
    Message.error_fingerprint,
)


def _csv_values(row: Any, details: bool) -> list[str]:
    """One CSV line's cells: the values `presenters.summary` gives, built straight from the row
    tuple (the export's per-row cost is its throughput)."""
    (
        id_,
        received_at,
        start,
        end,
        ms,
        message_type,
        errored,
        acknowledged_at,
        exchange_name,
        routing_key,
        hash_,
        payload_format,
        report_id,
        *identifiers,
        error_message,
        fingerprint,
    ) = row
    cells = [
        str(id_),
        received_at.isoformat(),
        start.isoformat() if start else "",
        end.isoformat() if end else "",
        "" if ms is None else str(ms),
        _csv_cell(message_type),
        "errored" if errored else "ok",
        "false" if acknowledged_at is None else "true",
        _csv_cell(exchange_name),
        _csv_cell(routing_key),
        _csv_cell(hash_),
        _csv_cell(payload_format),
        _csv_cell(report_id),
    ]
    if details:
        cells += [_csv_cell(v) for v in identifiers]
        cells.append(_csv_cell(presenters.error_summary(error_message)))
        cells.append(_csv_cell(fingerprint))
    return cells


def _csv_response(scope: Any, filters: MessageFilter) -> Response:
    columns = CSV_COLUMNS + (CSV_DETAIL_COLUMNS if scope.details else ())
    details = scope.details

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        rows = queries.iter_messages(scope, filters, columns=_CSV_QUERY_COLUMNS)
        for n, row in enumerate(rows, 1):
            writer.writerow(_csv_values(row, details))
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


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    # Spreadsheets run cells that start like a formula: keep producer text inert.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


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
def docs():
    """Interactive documentation (Swagger UI, vendored) of this API."""
    return render_template("api/docs.html")
