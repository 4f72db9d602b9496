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

from ..auth.scope import Scope
from ..errors import DomainError
from ..extensions import db
from .publisher import REINGEST_HEADER, Publisher, PublishError
from .queries import AUDIT_MAX_IDS, filtered_messages, routing_keys_seen

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


def reingest(scope: Scope, message: Message, request: ReingestRequest, settings: Any) -> AuditLog:
    """Re-publish `message` (payload possibly edited) to its exchange; always audited.

    Raises PermissionDenied or DomainError (bad input); a broker failure is returned as an audit
    row with outcome `error` (the caller shows it).
    """
    target = f"{message.exchange_name or '(no exchange)'} / {request.routing_key}"
    edited = request.payload != (message.payload or "")
    detail: dict[str, Any] = {
        "routing_key": request.routing_key,
        "original_routing_key": message.routing_key,
        "exchange": message.exchange_name,
        "edited": edited,
        "payload_sha256": hashlib.sha256(request.payload.encode("utf-8")).hexdigest(),
    }
    if not scope.can_reingest(row=message):
        audit(scope.actor, "reingest", "denied", message_ids=[message.id], target=target, **detail)
        raise PermissionDenied("You may not re-ingest this message.")
    allowed_keys = routing_keys_seen(message.exchange_name, message.routing_key)
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
            f"Routing key {request.routing_key!r} was never seen on exchange "
            f"{message.exchange_name!r}.",
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
        with Publisher(settings) as publisher:
            publish_message(publisher, message, request.payload, request.routing_key)
    except PublishError as exc:
        logger.warning("re-ingest of message %s failed: %s", message.id, exc)
        return audit(
            scope.actor,
            "reingest",
            "error",
            message_ids=[message.id],
            target=target,
            error=str(exc),
            **detail,
        )
    logger.info("message %s re-ingested to %s by %s", message.id, target, scope.actor)
    return audit(scope.actor, "reingest", "ok", message_ids=[message.id], target=target, **detail)


def publish_message(publisher: Publisher, message: Any, payload: str, routing_key: str) -> None:
    """Publish one stored message (a Message or a row with the same attributes)."""
    publisher.publish(
        payload,
        exchange=message.exchange_name or "",
        routing_key=routing_key,
        payload_format=message.payload_format,
        headers={REINGEST_HEADER: str(message.id)},
    )


def start_bulk_reingest(scope: Scope, args: Mapping[str, Any], expected: int | None) -> AuditLog:
    """Create the audit row of a bulk re-ingestion job (outcome `pending`); the caller enqueues."""
    filter_args = _filter_detail(args)
    if not scope.can_reingest():
        audit(scope.actor, "bulk-reingest", "denied", filter=filter_args, reason="no permission")
        raise PermissionDenied("You may not re-ingest messages.")
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


def bulk_reingest_ids(scope: Scope, args: Mapping[str, Any]) -> list[int]:
    """Ids of the filter's messages that the scope may re-ingest (oldest first)."""
    stmt = filtered_messages(scope, args, "reingest").order_by(Message.received_at, Message.id)
    return list(db.session.scalars(stmt))


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
    skip = {"csrf_token", "confirm", "expected", "mode", "cursor", "before", "after"}
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


def run_bulk_reingest(job_id: int, settings: Any, clock=None, sleep=None) -> AuditLog:
    """Publish every message of the job's filter, at most REINGEST_RATE_PER_SECOND per second.

    The scope is computed again from the user who started the job, so a permission removed in
    the meantime stops the job from publishing what the user may no longer re-ingest. Progress
    (total, done, failed, last errors) is committed to the audit row as it goes.
    """
    import time

    from werkzeug.datastructures import MultiDict

    from ..auth.scope import scope_for_user

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    job = db.session.get(AuditLog, job_id)
    if job is None or job.action != "bulk-reingest":
        raise DomainError(f"job {job_id} not found", 404)
    if job.outcome != "pending":
        logger.info("bulk re-ingest job %s already %s", job_id, job.outcome)
        return job
    detail = dict(job.detail or {})
    scope = scope_for_user(detail.get("user_id"), settings)
    args = MultiDict()
    for key, value in (detail.get("filter") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            args.add(key, item)
    ids = bulk_reingest_ids(scope, args) if scope.can_reingest() else []
    detail.update(total=len(ids), done=0, failed=0, errors=[], started_at=_now_iso())
    _save_job(job, "running", detail)

    interval = 1.0 / max(1, settings.REINGEST_RATE_PER_SECOND)
    next_slot = clock()
    last_progress = clock()
    published: list[int] = []
    try:
        with Publisher(settings) as publisher:
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
    detail["finished_at"] = _now_iso()
    if detail["failed"] == 0 and detail["done"] == detail["total"]:
        outcome = "ok"
    elif detail["done"]:
        outcome = "partial"
    else:
        outcome = "error"
    _save_job(job, outcome, detail, published)
    logger.info(
        "bulk re-ingest job %s: %s of %s published, %s failed",
        job_id,
        detail["done"],
        detail["total"],
        detail["failed"],
    )
    return job


def _save_job(job: AuditLog, outcome: str, detail: dict, published: list[int] | None = None):
    job.outcome = outcome
    job.detail = dict(detail)  # a new object, so SQLAlchemy sees the JSONB change
    if published is not None:
        job.message_ids = published[:AUDIT_MAX_IDS]
    db.session.commit()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
