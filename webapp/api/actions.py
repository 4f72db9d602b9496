"""Operator actions in the JSON API: the same services, allow-list, rate limit, size limit and
audit as the pages (webapp/actions/services.py, targets.py); only the answers differ (JSON).

Arguments of the bulk actions are the message list's filter (query string, form or a JSON
object), plus `through_id` (the bound the preview returned: nothing newer is touched) and
`expected` (the count the preview returned: recorded in the audit row; a mismatch is answered
with 409 and nothing is changed, for acknowledge and re-ingest alike). The preview is a GET, or a
POST with `step=preview` (a selection of many `ids` in a JSON body, which would outgrow a URL).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, jsonify, request, url_for
from werkzeug.datastructures import MultiDict

from ..actions import queries as action_queries
from ..actions import services
from ..apidoc import api_doc, error, json_ok, ref
from ..auth.scope import current_scope
from ..errors import DomainError, keep_audit_on_error
from ..extensions import db
from . import bp
from .openapi import BULK_BODY, BULK_PARAMETERS, DENIED, MODE, NOT_FOUND, STEP, UNAUTHORIZED

logger = logging.getLogger(__name__)


def _settings():
    return current_app.extensions["settings"]


def _json_body() -> dict[str, Any]:
    """The request's JSON object ({} without a JSON body); 400 when it is not an object."""
    if not request.is_json or not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise DomainError("The request body must be a JSON object.", field="body")
    return body


def action_args() -> MultiDict:
    """Query string, form and JSON object arguments as one MultiDict (lists repeat a key)."""
    args = MultiDict(request.args)
    for key, value in request.form.items(multi=True):
        args.add(key, value)
    for key, value in _json_body().items():
        for item in value if isinstance(value, list) else [value]:
            args.add(key, "" if item is None else str(item))
    return args


# ---- single message ------------------------------------------------------------------------------
def _acknowledge_doc(operation_id: str, summary: str):
    return api_doc(
        operation_id=operation_id,
        summary=summary,
        responses={
            "200": json_ok("Done (audited)", ref("AcknowledgeResult")),
            "401": UNAUTHORIZED,
            "403": DENIED,
            "404": NOT_FOUND,
        },
    )


@bp.post("/messages/<int:message_id>/acknowledge")
@_acknowledge_doc("acknowledgeMessage", "Acknowledge one message")
@keep_audit_on_error
def acknowledge_message(message_id: int):
    """Acknowledge one message (the caller's scope and acknowledge right)."""
    return _set_acknowledged(message_id, True)


@bp.post("/messages/<int:message_id>/unacknowledge")
@_acknowledge_doc("unacknowledgeMessage", "Withdraw the acknowledgement of one message")
@keep_audit_on_error
def unacknowledge_message(message_id: int):
    """Withdraw the acknowledgement of one message."""
    return _set_acknowledged(message_id, False)


def _set_acknowledged(message_id: int, acknowledged: bool):
    scope = current_scope()
    message = action_queries.get_message(scope, message_id)
    row = services.set_acknowledged(scope, message, acknowledged)
    db.session.commit()
    return jsonify(
        {
            "message_id": message.id,
            "acknowledged": message.acknowledged_at is not None,
            "acknowledged_at": message.acknowledged_at.isoformat()
            if message.acknowledged_at
            else None,
            "acknowledged_by": message.acknowledged_by,
            "audit_id": row.id,
        }
    )


@bp.post("/messages/<int:message_id>/reingest")
@api_doc(
    operation_id="reingestMessage",
    summary="Re-publish one message to its exchange (re-ingest allow-list, rate "
    "limit and size limit as on the page; always audited)",
    request_body={
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "payload": {
                            "type": "string",
                            "description": "Edited payload (default: the stored "
                            "one); must be well-formed in the message's format",
                        },
                        "routing_key": {
                            "type": "string",
                            "description": "One seen on the exchange (default: the message's)",
                        },
                        "exchange": {
                            "type": "string",
                            "description": "Only for a report that recorded no "
                            "exchange: one of the re-ingest allow-list",
                        },
                    },
                }
            }
        },
    },
    responses={
        "200": json_ok("Published", ref("ReingestResult")),
        "400": error("Bad payload or routing key (`field` names it)"),
        "401": UNAUTHORIZED,
        "403": DENIED,
        "404": NOT_FOUND,
        "413": error("The payload is larger than REPORT_MAX_BYTES"),
        "429": error("Rate limit: retry after the Retry-After seconds"),
        "502": json_ok("The broker refused or failed", ref("ReingestResult")),
    },
)
@keep_audit_on_error
def reingest_message(message_id: int):
    """Re-publish one message, its payload and routing key optionally edited (JSON body:
    `payload`, `routing_key`, and `exchange` for a report that recorded none)."""
    scope = current_scope()
    message = action_queries.get_message(scope, message_id)
    body = _json_body()
    for key in ("payload", "routing_key", "exchange"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            raise DomainError(f"{key} must be a string", field=key)
    if not scope.can_see("payload"):
        services.audit(
            scope.actor, "reingest", "denied", message_ids=[message.id], reason="no details"
        )
        raise services.PermissionDenied("You may not re-ingest this message.")
    form = services.ReingestRequest(
        payload=body["payload"] if body.get("payload") is not None else (message.payload or ""),
        routing_key=body["routing_key"]
        if body.get("routing_key") is not None
        else (message.routing_key or ""),
        exchange=(body.get("exchange") or None) if not message.exchange_name else None,
    )
    try:
        row = services.reingest(scope, message, form, _settings())
    except services.RateLimited as exc:
        db.session.commit()
        response = jsonify(_error_body(exc))
        response.status_code = exc.status
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    db.session.commit()
    ok = row.outcome == "ok"
    body = {
        "message_id": message.id,
        "outcome": row.outcome,
        "audit_id": row.id,
        "exchange": row.detail.get("exchange"),
        "routing_key": row.detail.get("routing_key"),
        "edited": row.detail.get("edited"),
    }
    if not ok:
        body["error"] = row.detail.get("error")
    return jsonify(body), 200 if ok else 502


def _error_body(exc: DomainError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": "Too Many Requests", "message": exc.message}
    body["status"] = exc.status
    if exc.field:
        body["field"] = exc.field
    return body


# ---- bulk ----------------------------------------------------------------------------------------


def _bounded(args: MultiDict) -> MultiDict:
    """The preview's arguments with the `through_id` bound (the newest id now when absent)."""
    frozen = MultiDict(args)
    if action_queries.through_id_arg(frozen) is None:
        frozen[action_queries.THROUGH_ID] = str(action_queries.newest_message_id())
    return frozen


def _previewing(args: MultiDict) -> bool:
    """A GET, or a POST with step=preview (ids in a JSON body instead of the URL)."""
    if request.method == "GET":
        return True
    step = args.get("step") or None
    if step not in (None, "preview"):
        raise DomainError("step must be 'preview' or absent", field="step")
    return step == "preview"


def _require_bound(args: MultiDict) -> None:
    if action_queries.through_id_arg(args) is None:
        raise DomainError(
            "through_id is required: take it from the preview (GET with the same filter).",
            field=action_queries.THROUGH_ID,
        )


@bp.route("/actions/acknowledge", methods=["GET", "POST"])
@api_doc(
    method="GET",
    operation_id="previewBulkAcknowledge",
    summary="How many messages a bulk (un-)acknowledge would change, and the "
    "through_id bound to send with it",
    parameters=[MODE, *BULK_PARAMETERS],
    responses={
        "200": json_ok("The preview", ref("BulkPreview")),
        "400": error("A filter argument is not valid"),
        "403": DENIED,
    },
)
@api_doc(
    method="POST",
    operation_id="bulkAcknowledge",
    summary="(Un-)acknowledge every message of the filter up to through_id (with "
    "step=preview: the preview, nothing done)",
    parameters=[MODE, *BULK_PARAMETERS, STEP],
    request_body=BULK_BODY,
    responses={
        "200": json_ok(
            "Done (audited); with step=preview, the preview (BulkPreview)",
            ref("BulkAcknowledgeResult"),
        ),
        "400": error("A filter argument is not valid, or through_id is missing"),
        "401": UNAUTHORIZED,
        "403": DENIED,
        "409": error("The count differs from `expected`: preview again"),
    },
)
@keep_audit_on_error
def bulk_acknowledge():
    """GET: preview (count and through_id) of a bulk (un-)acknowledge; POST: do it."""
    scope = current_scope()
    args = action_args()
    mode = args.get("mode", "acknowledge")
    if mode not in action_queries.BULK_MODES:
        raise DomainError(
            f"mode must be one of {', '.join(action_queries.BULK_MODES)}", field="mode"
        )
    hidden = "hidden" if mode == "acknowledge" else "only"
    if _previewing(args):
        if not scope.can_acknowledge():
            raise services.PermissionDenied("You may not acknowledge messages.")
        args = _bounded(args)
        stmt = action_queries.filtered_messages(scope, args, "acknowledge", acknowledged=hidden)
        return jsonify(
            {
                "mode": mode,
                "count": action_queries.preview_count(stmt),
                "through_id": int(args[action_queries.THROUGH_ID]),
            }
        )
    _require_bound(args)
    expected = action_queries.expected_arg(args.get("expected"))
    if expected is not None and scope.can_acknowledge():
        stmt = action_queries.filtered_messages(scope, args, "acknowledge", acknowledged=hidden)
        found = action_queries.count_matching(stmt)
        if found != expected:
            raise DomainError(
                f"{found} messages match now, not the {expected} expected: preview again.",
                409,
                field="expected",
            )
    row = services.bulk_set_acknowledged(scope, args, mode == "acknowledge", expected)
    db.session.commit()
    return jsonify(
        {
            "mode": mode,
            "count": row.detail.get("count"),
            "expected": expected,
            "through_id": action_queries.through_id_arg(args),
            "audit_id": row.id,
        }
    )


@bp.route("/actions/reingest", methods=["GET", "POST"])
@api_doc(
    method="GET",
    operation_id="previewBulkReingest",
    summary="How many messages a bulk re-ingest would publish (and which are "
    "refused by the allow-list), and the through_id bound",
    parameters=BULK_PARAMETERS,
    responses={
        "200": json_ok("The preview", ref("BulkPreview")),
        "400": error("A filter argument is not valid"),
        "403": DENIED,
    },
)
@api_doc(
    method="POST",
    operation_id="bulkReingest",
    summary="Start a bulk re-ingestion job (published at REINGEST_RATE_PER_SECOND; with "
    "step=preview: the preview, nothing started)",
    parameters=[*BULK_PARAMETERS, STEP],
    request_body=BULK_BODY,
    responses={
        "200": json_ok("step=preview: the preview", ref("BulkPreview")),
        "202": json_ok("The job (`job_id`, `status_url`)", ref("Job")),
        "400": error("A filter argument is not valid, or through_id is missing"),
        "401": UNAUTHORIZED,
        "403": DENIED,
        "409": error(
            "The count differs from `expected`: nothing is started (audited as refused); "
            "preview again"
        ),
    },
)
@keep_audit_on_error
def bulk_reingest():
    """GET: preview (count, through_id, refused exchanges) of a bulk re-ingest; POST: start the
    job (202 with its id and status URL)."""
    scope = current_scope()
    args = action_args()
    settings = _settings()
    if _previewing(args):
        if not scope.can_reingest():
            raise services.PermissionDenied("You may not re-ingest messages.")
        services.check_reingest_enabled(settings)
        args = _bounded(args)
        stmt = action_queries.filtered_messages(scope, args, "reingest")
        refused = services.refused_summary_bounded(scope, args, settings, 10_000)
        return jsonify(
            {
                "count": action_queries.reingest_preview_count(stmt, settings),
                "through_id": int(args[action_queries.THROUGH_ID]),
                "refused": {"count": refused["count"], "exchanges": refused["exchanges"]}
                if refused
                else None,
                "rate_per_second": settings.REINGEST_RATE_PER_SECOND,
            }
        )
    _require_bound(args)
    action_queries.filtered_messages(scope, args, "reingest")  # a 400 now, not a failed job
    # A count other than `expected` is a 409 (services.SelectionChanged), as for acknowledge.
    job = services.start_bulk_reingest(
        scope, args, action_queries.expected_arg(args.get("expected")), settings
    )
    db.session.commit()
    from tasks.actions import bulk_reingest as task

    try:
        task.delay(job.id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the job is marked failed
        logger.exception("could not enqueue bulk re-ingest job %s", job.id)
        job.outcome = "error"
        job.detail = {**job.detail, "errors": [{"message_id": None, "error": str(exc)}]}
        db.session.commit()
    status_url = url_for("api.job_status", job_id=job.id)
    return (
        jsonify({"job_id": job.id, "status_url": status_url, "outcome": job.outcome}),
        202,
        {"Location": status_url},
    )


@bp.get("/jobs/<int:job_id>")
@api_doc(
    operation_id="getJob",
    summary="Progress of a bulk re-ingestion job (its starter or an administrator)",
    responses={
        "200": json_ok("The job", ref("Job")),
        "404": error("Unknown job, or not the caller's"),
    },
)
def job_status(job_id: int):
    """A bulk re-ingestion job's progress (its starter or an administrator)."""
    scope = current_scope()
    job = action_queries.job(job_id)
    if not (scope.is_admin or (scope.user_id and job.detail.get("user_id") == scope.user_id)):
        raise DomainError(f"job {job_id} not found", 404)
    if job.outcome == "running" and services.fail_stale_jobs(_settings(), job_ids=[job.id]):
        db.session.refresh(job)
    detail = job.detail or {}
    return jsonify(
        {
            "job_id": job.id,
            "outcome": job.outcome,
            "started_by": job.actor,
            "started_at": job.at.isoformat() if job.at else None,
            "target": job.target,
            "total": detail.get("total"),
            "done": detail.get("done"),
            "failed": detail.get("failed"),
            "expected": detail.get("expected"),
            "errors": detail.get("errors", []),
            "filter": detail.get("filter"),
        }
    )
