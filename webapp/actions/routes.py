"""Operator actions: acknowledge / un-acknowledge, re-ingest (single and bulk), job progress."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from ..auth.scope import current_scope
from ..errors import DomainError, keep_audit_on_error
from ..extensions import db
from . import bp, editor, queries, services, targets
from .services import PermissionDenied, ReingestRequest

logger = logging.getLogger(__name__)


def _settings():
    return current_app.extensions["settings"]


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def message_url(message_id: int) -> str:
    try:
        return url_for("messages.detail", message_id=message_id)
    except BuildError:
        return f"/messages/{message_id}"


def _require_login_or_permission(allowed: bool, what: str) -> None:
    if allowed:
        return
    raise PermissionDenied(f"You may not {what}.")


# ---- single message ------------------------------------------------------------------------------


@bp.post("/messages/<int:message_id>/acknowledge")
@keep_audit_on_error
def acknowledge_message(message_id: int):
    return _set_acknowledged(message_id, True)


@bp.post("/messages/<int:message_id>/unacknowledge")
@keep_audit_on_error
def unacknowledge_message(message_id: int):
    return _set_acknowledged(message_id, False)


def _set_acknowledged(message_id: int, acknowledged: bool):
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    services.set_acknowledged(scope, message, acknowledged)
    db.session.commit()
    if _is_htmx():
        return render_template("actions/_message_actions.html", message=message)
    return redirect(message_url(message_id))


@bp.route("/messages/<int:message_id>/reingest", methods=["GET", "POST"])
@keep_audit_on_error
def reingest_message(message_id: int):
    """The re-ingest editor (GET), its review step (POST step=review: validation and the diff,
    nothing published), back to editing (step=edit) and the publish (any other POST; the
    confirmation form carries a one-time `form_token`, so a double submission publishes once)."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    step = request.form.get("step") if request.method == "POST" else None
    chosen = _chosen_exchange(message)
    if request.method == "GET" or step in ("review", "edit"):
        _require_login_or_permission(
            scope.can_see("payload") and scope.can_reingest(row=message), "re-ingest this message"
        )
        # A report without exchange (legacy producers) gets the allow-list to choose from; a
        # chosen exchange is checked against it like a stored one.
        offer_choice = not message.exchange_name and chosen is None and step != "review"
        if offer_choice and targets.allowed(_settings()):
            refusal = None
        else:
            refusal = targets.refusal(message.exchange_name or chosen, _settings())
        if refusal:  # no preview of a re-ingest that would be refused
            return _render_reingest(message, "", "", error=refusal, blocked=True), 403
    if request.method == "GET":
        return _render_reingest(
            message,
            editor.pretty(message.payload, message.payload_format),
            message.routing_key or "",
        )
    submitted = request.form.get("payload")
    payload = (
        (message.payload or "")
        if submitted is None
        else editor.submitted_payload(message, submitted)
    )
    routing_key = request.form.get("routing_key", message.routing_key or "")
    if step == "edit":
        return _render_reingest(message, _for_editing(message, payload), routing_key)
    if step == "review":
        return _review(message, payload, routing_key)
    token = request.form.get("form_token") or None
    if token and not editor.claim_form_token(message.id, token):
        page = render_template(
            "actions/reingest_duplicate.html",
            message=message,
            message_url=message_url(message.id),
        )
        return page, 409
    form = ReingestRequest(
        payload=payload, routing_key=routing_key, form_token=token, exchange=chosen
    )
    try:
        row = services.reingest(scope, message, form, _settings())
    except PermissionDenied:
        raise
    except targets.ReingestRefused as exc:
        db.session.commit()
        return _render_reingest(message, "", "", error=exc.message, blocked=True), exc.status
    except services.RateLimited as exc:
        db.session.commit()
        page = _render_reingest(
            message, _for_editing(message, form.payload), form.routing_key, error=exc.message
        )
        return page, exc.status, {"Retry-After": str(exc.retry_after)}
    except DomainError as exc:
        db.session.commit()
        page = _render_reingest(
            message, _for_editing(message, form.payload), form.routing_key, error=exc.message
        )
        return page, exc.status
    db.session.commit()
    status = 200 if row.outcome == "ok" else 502
    return _render_reingest(
        message, _for_editing(message, form.payload), form.routing_key, result=row
    ), status


def _for_editing(message, payload: str) -> str:
    """The text put back in the editor: pretty when it is the original payload."""
    if payload == (message.payload or ""):
        return editor.pretty(payload, message.payload_format)
    return payload


def _review(message, payload: str, routing_key: str):
    """The confirmation step: what will be published where, as a diff; nothing published."""
    try:
        services.check_well_formed(payload, message.payload_format)
        target = message.exchange_name or _chosen_exchange(message)
        if routing_key not in queries.routing_keys_seen(target, message.routing_key):
            raise DomainError(
                f"Routing key {routing_key[:200]!r} was never seen on this exchange.",
                field="routing_key",
            )
    except DomainError as exc:
        page = _render_reingest(
            message, _for_editing(message, payload), routing_key, error=exc.message
        )
        return page, exc.status
    return render_template(
        "actions/reingest_confirm.html",
        message=message,
        payload=payload,
        routing_key=routing_key,
        diff=editor.diff_lines(message, payload),
        unchanged=payload == (message.payload or ""),
        form_token=editor.new_form_token(),
        chosen_exchange=_chosen_exchange(message),
        headers_missing=services.lacks_original_headers(message),
        message_url=message_url(message.id),
    )


@bp.get("/messages/<int:message_id>/reingest/<int:audit_id>/arrivals")
def reingest_arrivals(message_id: int, audit_id: int):
    """Polled by the result of a re-ingest: the new report(s) carrying
    `x-dashboard-reingest-of: <message_id>`, once they are stored."""
    scope = current_scope()
    message = queries.get_message(scope, message_id)
    row = editor.reingest_row(message.id, audit_id)
    if row is None or row.outcome != "ok":
        raise DomainError(f"re-ingest {audit_id} of message {message_id} not found", 404)
    try:
        polls = max(0, int(request.args.get("polls", "0")))
    except ValueError:
        polls = 0
    found = editor.arrivals(scope, message.id, row.at)
    return render_template(
        "actions/_reingest_arrivals.html",
        message=message,
        audit_id=audit_id,
        found=found,
        polls=polls + 1,
        give_up=not found and polls + 1 >= editor.MAX_POLLS,
    )


def _chosen_exchange(message) -> str | None:
    """The target exchange the form names, for a report that recorded none (else None)."""
    if message.exchange_name or request.method != "POST":
        return None
    return (request.form.get("exchange") or "").strip() or None


def _render_reingest(message, payload, routing_key, error=None, result=None, blocked=False):
    """The re-ingest page; `blocked` (exchange refused) shows the reason and no form.

    A report that recorded no exchange gets a select of the re-ingest allow-list and the routing
    keys seen on any of those exchanges (the review and the publish check the pair)."""
    template = "actions/_reingest_form.html" if _is_htmx() else "actions/reingest.html"
    exchanges = [] if message.exchange_name else targets.allowed(_settings())
    if blocked:
        routing_keys = []
    elif message.exchange_name:
        routing_keys = queries.routing_keys_seen(message.exchange_name, message.routing_key)
    else:
        routing_keys = sorted(
            {k for name in exchanges for k in queries.routing_keys_seen(name, message.routing_key)}
        )
    return render_template(
        template,
        message=message,
        payload=payload,
        routing_key=routing_key,
        routing_keys=routing_keys,
        exchanges=exchanges,
        chosen_exchange=_chosen_exchange(message),
        headers_missing=services.lacks_original_headers(message),
        error=error,
        result=result,
        blocked=blocked,
        message_url=message_url(message.id),
    )


# ---- bulk ----------------------------------------------------------------------------------------


@bp.route("/actions/acknowledge", methods=["GET", "POST"])
@keep_audit_on_error
def bulk_acknowledge():
    scope = current_scope()
    args = request.values
    mode = args.get("mode", "acknowledge")
    if mode not in queries.BULK_MODES:
        raise DomainError(f"mode must be one of {', '.join(queries.BULK_MODES)}", field="mode")
    if _previewing():
        _require_login_or_permission(scope.can_acknowledge(), "acknowledge messages")
        args = _frozen(args)
        stmt = queries.filtered_messages(
            scope, args, "acknowledge", acknowledged="hidden" if mode == "acknowledge" else "only"
        )
        return render_template(
            "actions/bulk_preview.html",
            action=mode,
            count=queries.preview_count(stmt),
            fields=_hidden_fields(args),
            post_url=url_for("actions.bulk_acknowledge"),
            cancel_url=_cancel_url(args),
        )
    expected = queries.expected_arg(args.get("expected"))
    row = services.bulk_set_acknowledged(scope, args, mode == "acknowledge", expected)
    db.session.commit()
    return render_template("actions/bulk_done.html", row=row, action=mode)


@bp.route("/actions/reingest", methods=["GET", "POST"])
@keep_audit_on_error
def bulk_reingest():
    scope = current_scope()
    args = request.values
    settings = _settings()
    if _previewing():
        _require_login_or_permission(scope.can_reingest(), "re-ingest messages")
        services.check_reingest_enabled(settings)
        return _reingest_preview(scope, _frozen(args), settings)
    # Validate the filter now (a 400 here, not a failed job later).
    queries.filtered_messages(scope, args, "reingest")
    try:
        job = services.start_bulk_reingest(
            scope, args, queries.expected_arg(args.get("expected")), settings
        )
    except services.SelectionChanged as exc:
        # Nothing started: the preview again, with the count of now, to confirm or cancel.
        db.session.commit()  # the refusal's audit row
        return _reingest_preview(scope, args, settings, changed=exc.message)
    db.session.commit()
    from tasks.actions import bulk_reingest as task

    try:
        task.delay(job.id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the job is marked failed
        logger.exception("could not enqueue bulk re-ingest job %s", job.id)
        job.outcome = "error"
        job.detail = {**job.detail, "errors": [{"message_id": None, "error": str(exc)}]}
        db.session.commit()
    return redirect(url_for("actions.job_status", job_id=job.id))


@bp.get("/actions/jobs/<int:job_id>")
def job_status(job_id: int):
    scope = current_scope()
    job = queries.job(job_id)
    if not (scope.is_admin or (scope.user_id and job.detail.get("user_id") == scope.user_id)):
        raise DomainError(f"job {job_id} not found", 404)
    if job.outcome == "running" and services.fail_stale_jobs(_settings(), job_ids=[job.id]):
        db.session.refresh(job)  # its worker was lost: shown as failed, not running forever
    template = "actions/_job_progress.html" if _is_htmx() else "actions/job.html"
    return render_template(template, job=job)


#: A POST carrying `step=preview` asks for the preview, like a GET: the list's row selection
#: posts it, so a selection of up to MAX_SELECTED_IDS rows never outgrows the request line
#: (gunicorn refuses one over 4094 bytes with its own 400). The confirmation posts no `step`.
STEP = "step"
PREVIEW = "preview"


def _previewing() -> bool:
    """True for a bulk preview: a GET (links, small selections) or a POST with step=preview."""
    if request.method == "GET":
        return True
    step = request.form.get(STEP)
    if step not in (None, "", PREVIEW):
        raise DomainError(f"step must be {PREVIEW!r} or absent", field=STEP)
    return step == PREVIEW


def _reingest_preview(scope, args, settings, changed: str | None = None):
    """The bulk re-ingest preview of `args` (already bounded by through_id); `changed` is the
    notice of a confirmation refused because the count moved (answered 409)."""
    stmt = queries.filtered_messages(scope, args, "reingest")
    page = render_template(
        "actions/bulk_preview.html",
        action="reingest",
        count=queries.reingest_preview_count(stmt, settings),
        refused=services.refused_summary_bounded(
            scope, args, settings, queries.PREVIEW_COUNT_TIMEOUT_MS
        ),
        fields=_hidden_fields(args),
        post_url=url_for("actions.bulk_reingest"),
        cancel_url=_cancel_url(args),
        rate=settings.REINGEST_RATE_PER_SECOND,
        changed=changed,
    )
    return (page, 409) if changed else page


def _cancel_url(args) -> str:
    """Back to the list with the preview's filter (not its selection, bound or mode)."""
    skip = {"csrf_token", "expected", STEP, "mode", queries.THROUGH_ID, queries.IDS}
    query = [(k, v) for k in args for v in args.getlist(k) if k not in skip and v != ""]
    base = url_for("messages.index")
    return base + ("?" + urlencode(query) if query else "")


def _frozen(args) -> MultiDict:
    """The preview's arguments with an upper id bound (kept when the preview already has one):
    the confirmation then acts on the set the operator saw, not on what arrived since."""
    frozen = MultiDict(args)
    if queries.through_id_arg(frozen) is None:
        frozen[queries.THROUGH_ID] = str(queries.newest_message_id())
    return frozen


def _hidden_fields(args) -> list[tuple[str, str]]:
    skip = {"csrf_token", "expected", STEP}
    return [(key, value) for key in args for value in args.getlist(key) if key not in skip]
