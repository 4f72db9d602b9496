"""Message list, detail, payload download and trace pages (thin views over `queries`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from flask import (
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from ..auth.scope import current_scope
from ..errors import parse_keeping_input
from . import bp, presenters, queries
from .filters import (
    ACKNOWLEDGED,
    PAYLOAD_FORMATS,
    STATUS_LABELS,
    STATUSES,
    MessageFilter,
    datetime_local_value,
)

#: Rows the list keeps while live updates add new ones above (a wall screen left open for a day
#: at 200 reports/s would otherwise grow the table by 100 rows every half second).
LIVE_MAX_ROWS = 500


@bp.get("/")
def index():
    """The message list: filters in the URL, keyset pages, live updates on the newest page."""
    scope = current_scope()
    # A refused argument is shown next to its field on this page (status 400), the rest applied.
    (filters, cursor, limit), refused = parse_keeping_input(
        lambda args: (
            MessageFilter.from_args(args),
            queries.Cursor.from_args(args),
            queries.parse_limit(args),
        ),
        request.args,
    )
    scope.check_filters(filters)
    page = queries.list_messages(scope, filters, cursor, limit, count_cap=queries.QUICK_COUNT_CAP)
    rows = [presenters.summary(r, scope) for r in page.rows]
    # What every link of this page keeps: the filters and a non-default page size.
    nav_args = filters.url_args()
    if limit != queries.DEFAULT_LIMIT:
        nav_args["limit"] = limit
    if request.headers.get("HX-Request") and request.args.get("fragment") == "rows":
        # Infinite scroll asks for the next rows only.
        return render_template("messages/_rows.html", rows=rows, page=page, nav_args=nav_args)
    settings = current_app.extensions["settings"]
    # "Jump to a date": the same filters, the list moved to before that day's end (`until`).
    jump_fields = filters.replace(until=None, until_text=None).to_args()
    if limit != queries.DEFAULT_LIMIT:
        jump_fields.append(("limit", str(limit)))
    return render_template(
        "messages/list.html",
        refused=refused,
        jump_fields=jump_fields,
        jump_value=filters.until_text
        if filters.until_text and len(filters.until_text) == 10
        else "",
        filter_fields=filters.to_args(),
        can_acknowledge=scope.can_acknowledge(),
        can_reingest=scope.can_reingest() and bool(settings.REINGEST_EXCHANGES),
        raw_args=request.args,
        dashboard_exchange=settings.DASHBOARD_EXCHANGE,
        since_input=datetime_local_value(filters.since_text, end_of_day=False),
        until_input=datetime_local_value(filters.until_text, end_of_day=True),
        rows=rows,
        page=page,
        filters=filters,
        nav_args=nav_args,
        count=queries.count_messages(scope, filters, cap=queries.QUICK_COUNT_CAP),
        count_url=_count_url(filters, page),
        message_types=queries.message_types(scope),
        statuses=STATUSES,
        status_labels=STATUS_LABELS,
        acknowledged_choices=ACKNOWLEDGED,
        payload_formats=PAYLOAD_FORMATS,
        form=presenters.filter_form(scope),
        scope=scope,
        live_config={
            "url": url_for("live.messages_socket", **filters.url_args()),
            "enabled": page.is_first,
            # Rows kept while live updates add rows above; older ones go, and the way down
            # (the "load older" row, the pager's Older link) starts below the last row kept.
            "max_rows": LIVE_MAX_ROWS,
            "older": url_for("messages.index", **nav_args),
            "older_rows": url_for("messages.index", fragment="rows", **nav_args),
        },
    ), (400 if refused else 200)


def _count_url(filters: MessageFilter, page: queries.MessagePage) -> str:
    """Where the page fetches its count beyond QUICK_COUNT_CAP: the same filters, as of the
    page's newest row when live updates may add rows above it."""
    args = filters.url_args()
    if page.is_first and page.rows:
        top = page.rows[0]
        args["as_of"] = queries.Cursor(top.received_at, top.id).encode()
    return url_for("messages.count", **args)


@bp.get("/messages/count")
def count():
    """How many messages match the list's filters, exact up to COUNT_CAP (JSON). The list page
    asks for it once its rows are shown, when its own quick count stopped at QUICK_COUNT_CAP."""
    scope = current_scope()
    filters = MessageFilter.from_args(request.args)
    token = (request.args.get("as_of") or "").strip()
    as_of = queries.Cursor.decode(token, field="as_of") if token else None
    scope.check_filters(filters)
    counted = queries.count_messages(scope, filters, as_of=as_of)
    response = jsonify({"count": counted.value, "count_exact": counted.exact, "text": str(counted)})
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/messages/<int:message_id>")
def detail(message_id: int):
    """Permalink of one message: payload, errors, timings, routing, identifiers, actions."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    m = presenters.detail(message, scope)
    return render_template(
        "messages/detail.html",
        message=message,
        m=m,
        payload=presenters.payload_view(m),
        same_links=presenters.same_identifier_links(m),
        errors=m.get("errors", []),
        extra=m.get("extra", {}),
        scope=scope,
        has_pipeline=current_app.extensions["settings"].pipeline_for(message.message_type)
        is not None,
    )


@bp.get("/messages/<int:message_id>/payload")
def download_payload(message_id: int):
    """The raw payload exactly as received, as a download."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    if not scope.can_see("payload"):
        abort(403, "Your access does not include message payloads.")
    fmt = message.payload_format or "text"
    filename = f"message-{message.id}.{presenters.EXTENSIONS.get(fmt, 'txt')}"
    return Response(
        message.payload or "",
        mimetype=presenters.MIME_TYPES.get(fmt, "text/plain"),
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.get("/messages/<int:message_id>/trace")
def trace(message_id: int):
    """The pipeline around one message: ordered stages, failed and missing ones marked."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    pipeline = current_app.extensions["settings"].pipeline_for(message.message_type)
    if pipeline is None:  # a type without a pipeline (PIPELINES): its related messages instead
        return redirect(url_for("messages.related", message_id=message.id))
    result = queries.trace_message(scope, message, pipeline)
    return render_template(
        "messages/trace.html",
        message=message,
        m=presenters.summary(message, scope),
        trace=result,
        stages=[
            {
                "number": s.number,
                "message_type": s.message_type,
                "state": s.state,
                "attempts": [presenters.summary(r, scope) for r in s.attempts],
            }
            for s in result.stages
        ],
        related=[presenters.summary(r, scope) for r in result.related],
        scope=scope,
    )


@bp.get("/help", endpoint="help")
def help_page():
    """What PACER reports are, what each page answers, the keyboard shortcuts."""
    return render_template(
        "help.html", dashboard_exchange=current_app.extensions["settings"].DASHBOARD_EXCHANGE
    )


@bp.get("/messages/<int:message_id>/related")
def related(message_id: int):
    """Messages sharing this message's hash or identifiers (types without a pipeline trace)."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    rows, truncated = queries.related_messages(scope, message)
    return render_template(
        "messages/related.html",
        message=message,
        m=presenters.summary(message, scope),
        related=[presenters.summary(r, scope) for r in rows],
        truncated=truncated,
        has_pipeline=current_app.extensions["settings"].pipeline_for(message.message_type)
        is not None,
        scope=scope,
    )


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for it on every page; answer instead of logging a 404."""
    return send_from_directory(
        Path(current_app.static_folder, "img"),
        "favicon.svg",
        mimetype="image/svg+xml",
        max_age=86400,
    )


# ---- template helpers ---------------------------------------------------------------------------
@bp.app_template_filter("utc")
def format_utc(value: datetime | None, seconds: bool = True) -> str:
    """A timestamp as UTC text (what the pages show; the API gives ISO 8601)."""
    if value is None:
        return ""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(fmt)


@bp.app_template_filter("duration_ms")
def format_duration(ms: int | None) -> str:
    """A processing time in ms as short human text; None (no usable stamps) is "unknown"."""
    if ms is None:
        return "unknown"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


@bp.app_template_filter("pretty_json")
def format_pretty_json(value: object) -> str:
    """Indented JSON as plain text (autoescaped like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


@bp.app_context_processor
def _helpers():
    return {
        "row_identifiers": presenters.row_identifiers,
        "short_hash": presenters.SHORT_HASH,
        "row_cursor": _row_cursor,
    }


def _row_cursor(m: dict) -> str:
    """The cursor of the page below this row (the list's live updates continue from it)."""
    return queries.Cursor(m["received_at"], m["id"]).encode()
