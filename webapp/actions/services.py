"""Writes of the actions area: acknowledge, re-ingest, bulk jobs. Every attempt is audited.

Functions flush (and publish), never commit: the caller commits once, so the audit row and the
state change land together.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from defusedxml import ElementTree as SafeET
from sqlalchemy import select, update

from models import AuditLog, Message

from ..amqp import Publisher, PublishError
from ..auth.scope import Scope
from ..errors import DomainError
from ..extensions import db
from . import ratelimit, targets
from .queries import AUDIT_MAX_IDS, count_matching, filtered_messages, routing_keys_seen
from .ratelimit import RateLimited

logger = logging.getLogger(__name__)


def audit(
    actor: str,
    action: str,
    outcome: str,
    *,
    message_ids: list[int] | None = None,
    target: str | None = None,
    **detail: Any,
) -> AuditLog:
    """Add an audit row (flushed, so it has its id)."""
    row = AuditLog(
        actor=actor,
        action=action,
        outcome=outcome,
        message_ids=list(message_ids or []),
        target=target,
        detail=detail,
    )
    db.session.add(row)
    db.session.flush()
    return row


class PermissionDenied(DomainError):
    status = 403


def check_reingest_enabled(settings: Any) -> None:
    """Raise ReingestRefused when re-ingest is disabled (REINGEST_EXCHANGES is empty)."""
    if not settings.REINGEST_EXCHANGES:
        raise targets.ReingestRefused(targets.DISABLED)


# ---- acknowledge ---------------------------------------------------------------------------------


def set_acknowledged(scope: Scope, message: Message, acknowledged: bool) -> AuditLog:
    """Acknowledge (or un-acknowledge) one message the scope may act on."""
    action = "acknowledge" if acknowledged else "unacknowledge"
    if not scope.can_acknowledge(message):
        audit(scope.actor, action, "denied", message_ids=[message.id], reason="no permission")
        raise PermissionDenied("You may not acknowledge this message.")
    if acknowledged:
        message.acknowledged_at = datetime.now(UTC)
        message.acknowledged_by = scope.actor
    else:
        message.acknowledged_at = None
        message.acknowledged_by = None
    db.session.flush()
    return audit(scope.actor, action, "ok", message_ids=[message.id])


def bulk_set_acknowledged(
    scope: Scope, args: Mapping[str, Any], acknowledged: bool, expected: int | None = None
) -> AuditLog:
    """(Un-)acknowledge every message of the filter the scope may acknowledge, in one UPDATE."""
    action = "bulk-acknowledge" if acknowledged else "bulk-unacknowledge"
    filter_args = _filter_detail(args)
    if not scope.can_acknowledge():
        audit(scope.actor, action, "denied", filter=filter_args, reason="no permission")
        raise PermissionDenied("You may not acknowledge messages.")
    ids = filtered_messages(
        scope, args, "acknowledge", acknowledged="hidden" if acknowledged else "only"
    )
    if acknowledged:
        ids = ids.where(Message.acknowledged_at.is_(None))
        values = {"acknowledged_at": datetime.now(UTC), "acknowledged_by": scope.actor}
    else:
        ids = ids.where(Message.acknowledged_at.is_not(None))
        values = {"acknowledged_at": None, "acknowledged_by": None}
    # Rollup lock order (RELIABILITY.md, "Rollup rows"): the rows are locked in id order first,
    # so two operators' overlapping bulk actions wait for each other instead of deadlocking
    # (a plain UPDATE locks them in whatever order its plan reads them). The state condition
    # is re-checked on the row as locked; the UPDATE then waits for no one, and its trigger
    # `messages_ack_rollup` locks the rollup rows in their own order.
    locked = (
        ids.add_columns(Message.received_at)
        .order_by(Message.id)
        .with_for_update(of=Message)
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    result = db.session.execute(
        update(Message)
        .where(Message.id == locked.c.id, Message.received_at == locked.c.received_at)
        .values(**values)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    changed = sorted(row[0] for row in result)
    return audit(
        scope.actor,
        action,
        "ok",
        message_ids=changed[:AUDIT_MAX_IDS],
        target=_describe_filter(filter_args),
        count=len(changed),
        expected=expected,
        filter=filter_args,
    )


# ---- re-ingest -----------------------------------------------------------------------------------


@dataclass
class ReingestRequest:
    payload: str
    routing_key: str
    #: Target exchange chosen on the page; only used when the report recorded none (legacy
    #: producers), and only one of the re-ingest allow-list.
    exchange: str | None = None
    #: One-time token of the editor's confirmation form (recorded in the audit row).
    form_token: str | None = None


def target_exchange(message: Message, request: ReingestRequest) -> tuple[str | None, bool]:
    """(exchange to publish to, chosen on the page): the stored exchange, or, for a report that
    carries none, the one the form names."""
    if message.exchange_name:
        return message.exchange_name, False
    chosen = (request.exchange or "").strip() or None
    return chosen, chosen is not None


def lacks_original_headers(message: Message) -> bool:
    """True when the stored report has no copy of the original message's AMQP headers (the SDK's
    `headers` extra): a re-ingest then carries none of them, only the dashboard's own."""
    return "headers" not in (message.extra or {})


def check_well_formed(payload: str, payload_format: str) -> None:
    """Edited JSON/XML must parse (XML with defusedxml: no entities, no external references)."""
    if payload_format == "json":
        try:
            json.loads(payload)
        except ValueError as exc:
            raise DomainError(
                f"The payload is not well-formed JSON: {exc}", field="payload"
            ) from None
    elif payload_format == "xml":
        try:
            SafeET.fromstring(payload)
        except Exception as exc:  # noqa: BLE001 - ParseError and defusedxml's refusals alike
            raise DomainError(
                f"The payload is not well-formed XML: {type(exc).__name__}: {exc}", field="payload"
            ) from None


class PayloadTooLarge(DomainError):
    status = 413


def reingest(scope: Scope, message: Message, request: ReingestRequest, settings: Any) -> AuditLog:
    """Re-publish `message` (payload possibly edited) to its exchange; always audited.

    Raises PermissionDenied, ReingestRefused (exchange not allowed: outcome `refused`),
    RateLimited (outcome `refused`) or DomainError (bad input, outcome `error`); a broker failure
    is returned as an audit row with outcome `error` (the caller shows it).
    """
    target_name, chosen = target_exchange(message, request)
    exchange = _clip(target_name)
    target = (
        f"{exchange if exchange is not None else '(no exchange)'} / {_clip(request.routing_key)}"
    )
    edited = request.payload != (message.payload or "")
    payload_bytes = len(request.payload.encode("utf-8"))
    detail: dict[str, Any] = {
        "routing_key": _clip(request.routing_key),
        "original_routing_key": _clip(message.routing_key),
        "exchange": exchange,
        "edited": edited,
        "payload_bytes": payload_bytes,
        "payload_sha256": hashlib.sha256(request.payload.encode("utf-8")).hexdigest(),
    }
    if request.form_token:
        detail["form_token"] = request.form_token
    if chosen:
        detail["exchange_chosen"] = True  # the report recorded none (legacy producer)
    if lacks_original_headers(message):
        detail["original_headers"] = "absent"
    if not scope.can_reingest(row=message):
        audit(scope.actor, "reingest", "denied", message_ids=[message.id], target=target, **detail)
        raise PermissionDenied("You may not re-ingest this message.")
    reason = targets.refusal(target_name, settings)
    if reason:
        audit(
            scope.actor,
            "reingest",
            "refused",
            message_ids=[message.id],
            target=target,
            reason=reason,
            **detail,
        )
        logger.warning("re-ingest of message %s refused: %s", message.id, reason)
        raise targets.ReingestRefused(reason, field="exchange")
    try:
        ratelimit.check(scope.actor, settings.REINGEST_USER_PER_MINUTE)
    except RateLimited as exc:
        audit(
            scope.actor,
            "reingest",
            "refused",
            message_ids=[message.id],
            target=target,
            reason=exc.message,
            retry_after=exc.retry_after,
            **detail,
        )
        raise
    if payload_bytes > settings.REPORT_MAX_BYTES:
        error = (
            f"The payload is {payload_bytes} bytes: at most {settings.REPORT_MAX_BYTES} bytes "
            "(REPORT_MAX_BYTES) can be re-ingested; the report of a larger message would be "
            "quarantined."
        )
        audit(
            scope.actor,
            "reingest",
            "error",
            message_ids=[message.id],
            target=target,
            error=error,
            **detail,
        )
        raise PayloadTooLarge(error, field="payload")
    allowed_keys = routing_keys_seen(target_name, message.routing_key)
    if request.routing_key not in allowed_keys:
        audit(
            scope.actor,
            "reingest",
            "error",
            message_ids=[message.id],
            target=target,
            error="routing key not seen on this exchange",
            **detail,
        )
        raise DomainError(
            f"Routing key {_clip(request.routing_key)!r} was never seen on exchange "
            f"{targets.shown(target_name)}.",
            field="routing_key",
        )
    try:
        check_well_formed(request.payload, message.payload_format)
    except DomainError as exc:
        audit(
            scope.actor,
            "reingest",
            "error",
            message_ids=[message.id],
            target=target,
            error=exc.message,
            **detail,
        )
        raise
    try:
        with targets.reingest_publisher(settings) as publisher:
            publish_message(
                publisher, message, request.payload, request.routing_key, exchange=target_name
            )
    except Exception as exc:  # noqa: BLE001 - every failure is shown and audited, never a 500
        if isinstance(exc, PublishError):
            logger.warning("re-ingest of message %s failed: %s", message.id, exc)
            error = str(exc)
        else:
            logger.exception("re-ingest of message %s failed", message.id)
            error = f"unexpected error: {type(exc).__name__}: {exc}"
        return audit(
            scope.actor,
            "reingest",
            "error",
            message_ids=[message.id],
            target=target,
            error=error,
            **detail,
        )
    logger.info("message %s re-ingested to %s by %s", message.id, target, scope.actor)
    return audit(scope.actor, "reingest", "ok", message_ids=[message.id], target=target, **detail)


def publish_message(
    publisher: Publisher,
    message: Any,
    payload: str,
    routing_key: str,
    exchange: str | None = None,
) -> None:
    """Publish one stored message (a Message or a row with the same attributes) to its exchange,
    or to `exchange` (chosen for a report that recorded none)."""
    publisher.publish(
        payload,
        exchange=message.exchange_name or exchange or "",
        routing_key=routing_key,
        payload_format=message.payload_format,
        headers={targets.REINGEST_HEADER: str(message.id)},
    )


class SelectionChanged(DomainError):
    """The messages a bulk re-ingest would publish now are not as many as the operator
    confirmed (acknowledged, deleted or let out of the scope or allow-list since the preview;
    nothing newer than the preview's `through_id` counts): nothing is published."""

    status = 409

    def __init__(self, found: int, expected: int) -> None:
        super().__init__(
            f"{found} message{' matches' if found == 1 else 's match'} now, not the {expected} "
            "confirmed: nothing was re-ingested. Preview again.",
            field="expected",
        )
        self.found = found
        self.expected = expected


def start_bulk_reingest(
    scope: Scope, args: Mapping[str, Any], expected: int | None, settings: Any
) -> AuditLog:
    """Create the audit row of a bulk re-ingestion job (outcome `pending`); the caller enqueues.

    Messages of the filter on exchanges re-ingest may not publish to are left out of the job;
    they are named in an audit row of their own (outcome `refused`).
    """
    filter_args = _filter_detail(args)
    if not scope.can_reingest():
        audit(scope.actor, "bulk-reingest", "denied", filter=filter_args, reason="no permission")
        raise PermissionDenied("You may not re-ingest messages.")
    if not settings.REINGEST_EXCHANGES:
        audit(
            scope.actor,
            "bulk-reingest",
            "refused",
            target=_describe_filter(filter_args),
            filter=filter_args,
            reason=targets.DISABLED,
        )
        raise targets.ReingestRefused(targets.DISABLED)
    if expected is not None:
        # As bulk acknowledge does through the API: the confirmation acts on the count the
        # operator confirmed, or on nothing (409, preview again).
        found = count_matching(_reingest_statement(scope, args, settings))
        if found != expected:
            error = SelectionChanged(found, expected)
            audit(
                scope.actor,
                "bulk-reingest",
                "refused",
                target=_describe_filter(filter_args),
                filter=filter_args,
                reason=error.message,
                count=found,
                expected=expected,
            )
            raise error
    refused = refused_summary_bounded(scope, args, settings)
    if refused and refused["count"]:
        audit(
            scope.actor,
            "bulk-reingest",
            "refused",
            message_ids=refused["ids"],
            target=_describe_filter(filter_args),
            filter=filter_args,
            reason="exchange not on the re-ingest allow-list (REINGEST_EXCHANGES); "
            "these messages are left out of the job",
            count=refused["count"],
            exchanges=refused["exchanges"],
        )
    return audit(
        scope.actor,
        "bulk-reingest",
        "pending",
        target=_describe_filter(filter_args),
        filter=filter_args,
        user_id=scope.user_id,
        expected=expected,
        total=None,
        done=0,
        failed=0,
    )


def bulk_reingest_ids(scope: Scope, args: Mapping[str, Any], settings: Any) -> list[int]:
    """Ids of the filter's messages that the scope may re-ingest, on permitted exchanges only
    (oldest first)."""
    stmt = _reingest_statement(scope, args, settings).order_by(Message.received_at, Message.id)
    return list(db.session.scalars(stmt))


def _reingest_statement(scope: Scope, args: Mapping[str, Any], settings: Any):
    """The ids a bulk re-ingest publishes (the preview counts the same statement)."""
    return filtered_messages(scope, args, "reingest").where(targets.allowed_clause(settings))


#: A bulk preview or job names at most this many refused exchanges.
REFUSED_EXCHANGES_SHOWN = 10


def refused_summary(scope: Scope, args: Mapping[str, Any], settings: Any) -> dict[str, Any]:
    """The filter's messages (that the scope may re-ingest) on exchanges re-ingest may not
    publish to: count, the first ids and the most frequent exchanges with their counts."""
    from sqlalchemy import func, not_

    refused = filtered_messages(scope, args, "reingest").where(
        not_(targets.allowed_clause(settings)) | Message.exchange_name.is_(None)
    )
    sub = refused.add_columns(Message.exchange_name).subquery()
    rows = db.session.execute(
        select(sub.c.exchange_name, func.count())
        .group_by(sub.c.exchange_name)
        .order_by(func.count().desc())
    ).all()
    count = sum(n for _, n in rows)
    ids = (
        list(db.session.scalars(refused.order_by(Message.id).limit(AUDIT_MAX_IDS))) if count else []
    )
    return {
        "count": count,
        "ids": ids,
        "exchanges": [
            {"exchange": _clip(name), "count": n} for name, n in rows[:REFUSED_EXCHANGES_SHOWN]
        ],
    }


def refused_summary_bounded(
    scope: Scope, args: Mapping[str, Any], settings: Any, timeout_ms: int = 10_000
) -> dict[str, Any] | None:
    """`refused_summary`, or None when it takes longer than `timeout_ms` (a huge filter)."""
    from sqlalchemy.exc import OperationalError

    from .queries import set_statement_timeout

    try:
        with db.session.begin_nested():
            set_statement_timeout(timeout_ms)
            return refused_summary(scope, args, settings)
    except OperationalError:
        logger.info("counting the refused messages of a bulk re-ingest timed out")
        return None


#: Producer-chosen names are kept in audit rows at most this long.
AUDIT_NAME_CHARS = 300


def _clip(value: str | None) -> str | None:
    if value is None or len(value) <= AUDIT_NAME_CHARS:
        return value
    return value[:AUDIT_NAME_CHARS] + f"… ({len(value)} characters)"


def load_for_publish(ids: list[int]):
    """Rows with what publishing needs, for a chunk of ids."""
    return db.session.execute(
        select(
            Message.id,
            Message.payload,
            Message.payload_format,
            Message.exchange_name,
            Message.routing_key,
        ).where(Message.id.in_(ids))
    ).all()


def _filter_detail(args: Mapping[str, Any]) -> dict[str, Any]:
    skip = {"csrf_token", "confirm", "expected", "mode", "step", "cursor", "before", "after"}
    out: dict[str, Any] = {}
    for key in args:
        if key in skip:
            continue
        values = args.getlist(key) if hasattr(args, "getlist") else [args[key]]
        values = [v for v in values if v not in ("", None)]
        if values:
            out[key] = values if len(values) > 1 else values[0]
    return out


def _describe_filter(filter_args: Mapping[str, Any]) -> str:
    if not filter_args:
        return "all messages"
    return "; ".join(
        f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in sorted(filter_args.items())
    )


# ---- bulk re-ingest job (run by tasks.actions.bulk_reingest) -------------------------------------

#: Progress is written to the job's audit row at most this often (seconds) and at the end.
PROGRESS_EVERY_SECONDS = 1.0
CHUNK = 200
#: A `running` job whose last progress is older than this (and at least STALE_CONFIRM_FACTOR
#: publish-confirm timeouts) has lost its worker: `fail_stale_jobs` marks it failed.
STALE_JOB_SECONDS = 300
STALE_CONFIRM_FACTOR = 4


def stale_after_seconds(settings: Any) -> int:
    return max(STALE_JOB_SECONDS, STALE_CONFIRM_FACTOR * settings.PUBLISH_CONFIRM_TIMEOUT)


def run_bulk_reingest(job_id: int, settings: Any, clock=None, sleep=None) -> AuditLog:
    """Publish every message of the job's filter, at most REINGEST_RATE_PER_SECOND per second.

    The scope is computed again from the user who started the job, so a permission removed in
    the meantime stops the job from publishing what the user may no longer re-ingest; so is the
    exchange allow-list (messages on other exchanges are counted as `refused`, never published).
    Progress (total, done, failed, last errors, heartbeat) is committed to the audit row as it
    goes. Whatever stops the job, it ends `ok`, `partial` or `error`, never left `running`
    (a worker that dies outright is caught by `fail_stale_jobs`).
    """
    job = db.session.get(AuditLog, job_id)
    if job is None or job.action != "bulk-reingest":
        raise DomainError(f"job {job_id} not found", 404)
    if job.outcome == "running":
        # Redelivered after its worker was lost: never publish twice; fail it once it is stale.
        fail_stale_jobs(settings, job_ids=[job_id])
        logger.info("bulk re-ingest job %s already %s", job_id, job.outcome)
        return job
    if job.outcome != "pending":
        logger.info("bulk re-ingest job %s already %s", job_id, job.outcome)
        return job
    try:
        return _run_job(job, settings, clock, sleep)
    except BaseException as exc:
        logger.exception("bulk re-ingest job %s stopped", job_id)
        fail_job(job_id, f"the job stopped: {type(exc).__name__}: {exc}")
        raise


def _run_job(job: AuditLog, settings: Any, clock, sleep) -> AuditLog:
    import time

    from werkzeug.datastructures import MultiDict

    from ..auth.scope import scope_for_user

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    detail = dict(job.detail or {})
    scope = scope_for_user(detail.get("user_id"), settings)
    args = MultiDict()
    for key, value in (detail.get("filter") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            args.add(key, item)
    if scope.can_reingest():
        ids = bulk_reingest_ids(scope, args, settings)
        refused = refused_summary(scope, args, settings)
    else:
        ids, refused = [], {"count": 0, "exchanges": []}
    detail.update(total=len(ids), done=0, failed=0, errors=[], started_at=_now_iso())
    detail.update(refused=refused["count"], refused_exchanges=refused["exchanges"])
    expected = detail.get("expected")
    if not settings.REINGEST_EXCHANGES:
        detail["errors"].append({"message_id": None, "error": targets.DISABLED})
    elif expected is not None and len(ids) != expected:
        # Checked at the confirmation, and again here: the set may have changed while the job
        # waited for a worker. Confirmed N is published N, or nothing.
        changed = SelectionChanged(len(ids), expected)
        detail["errors"].append({"message_id": None, "error": changed.message})
        ids = []
    elif refused["count"] and not ids:
        detail["errors"].append(
            {
                "message_id": None,
                "error": f"all {refused['count']} messages are on exchanges re-ingest may not "
                "publish to (REINGEST_EXCHANGES)",
            }
        )
    _save_job(job, "running", detail)
    if ids:
        _publish_all(job, ids, detail, settings, clock, sleep)
    detail["finished_at"] = _now_iso()
    if detail["errors"] and not detail["done"]:
        outcome = "error"
    elif detail["failed"] or detail["refused"] or detail["done"] < detail["total"]:
        outcome = "partial"
    else:
        outcome = "ok"
    _save_job(job, outcome, detail)
    logger.info(
        "bulk re-ingest job %s: %s of %s published, %s failed, %s refused",
        job.id,
        detail["done"],
        detail["total"],
        detail["failed"],
        detail["refused"],
    )
    return job


def _publish_all(job, ids: list[int], detail: dict, settings: Any, clock, sleep) -> None:
    interval = 1.0 / max(1, settings.REINGEST_RATE_PER_SECOND)
    next_slot = clock()
    last_progress = clock()
    published: list[int] = []
    try:
        with targets.reingest_publisher(settings) as publisher:
            for start in range(0, len(ids), CHUNK):
                for row in load_for_publish(ids[start : start + CHUNK]):
                    wait = next_slot - clock()
                    if wait > 0:
                        sleep(wait)
                    next_slot = max(next_slot + interval, clock())
                    try:
                        publish_message(publisher, row, row.payload or "", row.routing_key or "")
                        detail["done"] += 1
                        published.append(row.id)
                    except PublishError as exc:
                        detail["failed"] += 1
                        if len(detail["errors"]) < 20:
                            detail["errors"].append({"message_id": row.id, "error": str(exc)})
                    if clock() - last_progress >= PROGRESS_EVERY_SECONDS:
                        last_progress = clock()
                        _save_job(job, "running", detail, published)
    except PublishError as exc:  # could not even connect
        detail["errors"].append({"message_id": None, "error": str(exc)})
    job.message_ids = published[:AUDIT_MAX_IDS]


def fail_job(job_id: int, reason: str) -> None:
    """Mark a job that is still `pending` or `running` as failed (`error`) with the reason.

    Used when its task raised or died; tolerant of a session left unusable by the failure.
    """
    try:
        db.session.rollback()
        job = db.session.get(AuditLog, job_id)
        if job is None or job.outcome not in ("pending", "running"):
            return
        detail = dict(job.detail or {})
        errors = list(detail.get("errors") or [])
        errors.append({"message_id": None, "error": reason})
        detail.update(errors=errors[-21:], finished_at=_now_iso(), failure=reason)
        _save_job(job, "error", detail)
    except Exception:  # noqa: BLE001 - the stale-job sweep is the fallback
        logger.exception("could not mark bulk re-ingest job %s failed", job_id)
        db.session.rollback()


def fail_stale_jobs(settings: Any, job_ids: list[int] | None = None) -> list[int]:
    """Mark `running` jobs without progress for `stale_after_seconds` as failed; their ids.

    A job's worker writes a heartbeat with its progress at least every few seconds; a job whose
    heartbeat stopped lost its worker (killed, host gone) and would otherwise stay `running`.
    """
    from sqlalchemy import text

    limit = stale_after_seconds(settings)
    params: dict[str, Any] = {"stale": limit}
    only = ""
    if job_ids is not None:
        only = "AND id = ANY(:ids)"
        params["ids"] = list(job_ids)
    rows = db.session.execute(
        text(
            f"""
            UPDATE audit_log
            SET outcome = 'error',
                detail = detail || jsonb_build_object(
                    'finished_at', to_char(now() AT TIME ZONE 'UTC',
                                           'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
                    'failure', 'no progress for ' || :stale || ' s: the worker running it stopped',
                    'errors', COALESCE(detail->'errors', '[]'::jsonb) || jsonb_build_array(
                        jsonb_build_object(
                            'message_id', NULL,
                            'error', 'the job stopped: no progress for ' || :stale
                                     || ' s (its worker was lost); start a new job for the rest'
                        )))
            WHERE action = 'bulk-reingest' AND outcome = 'running' {only}
              AND COALESCE((detail->>'heartbeat_at')::timestamptz,
                           (detail->>'started_at')::timestamptz, at)
                  < now() - make_interval(secs => :stale)
            RETURNING id
            """
        ),
        params,
    ).all()
    db.session.commit()
    failed = [r[0] for r in rows]
    if failed:
        logger.warning("bulk re-ingest jobs %s had lost their worker: marked failed", failed)
    return failed


def _save_job(job: AuditLog, outcome: str, detail: dict, published: list[int] | None = None):
    job.outcome = outcome
    detail["heartbeat_at"] = _now_iso()
    job.detail = dict(detail)  # a new object, so SQLAlchemy sees the JSONB change
    if published is not None:
        job.message_ids = published[:AUDIT_MAX_IDS]
    db.session.commit()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
