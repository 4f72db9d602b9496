"""Reads of the actions area. Every message read goes through the user's scope."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from models import AuditLog, Message

from ..auth.scope import Scope
from ..errors import DomainError
from ..extensions import db

logger = logging.getLogger(__name__)

#: Routing keys offered for re-ingestion come from this recent window of traffic.
ROUTING_KEY_WINDOW = timedelta(days=30)
ROUTING_KEY_SAMPLE = 50_000
#: Bulk audit rows keep the ids only up to this many messages (the count and filter always).
AUDIT_MAX_IDS = 1000
#: The `mode` of a bulk acknowledgement.
BULK_MODES = ("acknowledge", "unacknowledge")
#: A preview count longer than this is reported as unknown rather than holding the page.
PREVIEW_COUNT_TIMEOUT_MS = 10_000


def get_message(scope: Scope, message_id: int) -> Message:
    """The message if it exists and the scope sees it; 404 otherwise (no existence leak)."""
    stmt = scope.apply(select(Message).where(Message.id == message_id), Message)
    message = db.session.scalar(stmt)
    if message is None:
        raise DomainError(f"message {message_id} not found", 404)
    return message


def message_history(message_id: int, limit: int = 50) -> list[AuditLog]:
    """Audit rows (acknowledgements, re-ingestions) that name this message, newest first."""
    return list(
        db.session.scalars(
            select(AuditLog)
            .where(AuditLog.message_ids.contains([message_id]))
            .order_by(AuditLog.at.desc(), AuditLog.id.desc())
            .limit(limit)
        )
    )


def routing_keys_seen(exchange: str | None, current: str | None = None) -> list[str]:
    """Routing keys seen on `exchange` in recent traffic (plus the message's own key)."""
    keys: set[str] = {current} if current else set()
    if exchange:
        since = datetime.now(UTC) - ROUTING_KEY_WINDOW
        # Bounded: the newest rows of the window through the (received_at, id) index.
        recent = (
            select(Message.routing_key)
            .where(Message.exchange_name == exchange, Message.received_at >= since)
            .where(Message.routing_key.is_not(None))
            .order_by(Message.received_at.desc())
            .limit(ROUTING_KEY_SAMPLE)
            .subquery()
        )
        keys.update(db.session.scalars(select(recent.c.routing_key).distinct()))
    return sorted(keys)


def filtered_messages(
    scope: Scope, args: Mapping[str, Any], action: str, acknowledged: str | None = None
):
    """SELECT of message ids matching the list filter `args`, the scope and the action grant.

    `fingerprint=<error fingerprint>` restricts to one error group (the /errors page's bulk
    actions); every other argument is the message list's filter (webapp.messages.filters).
    """
    stmt = select(Message.id)
    stmt = scope.apply(stmt, Message).where(scope.action_clause(Message, action))
    stmt = apply_list_filter(stmt, args, acknowledged, scope)
    fingerprint = (args.get("fingerprint") or "").strip()
    if fingerprint:
        stmt = stmt.where(Message.error_fingerprint == fingerprint)
    ids = ids_arg(args)
    if ids is not None:
        # Rows the operator ticked on the list: still ANDed with the filter, scope and grant.
        stmt = stmt.where(Message.id.in_(ids))
    through_id = through_id_arg(args)
    if through_id is not None:
        # The set the operator previewed: nothing that arrived after the preview.
        stmt = stmt.where(Message.id <= through_id)
    return stmt


#: Name of the argument naming the selected messages (repeatable, or comma-separated).
IDS = "ids"
#: At most this many selected messages in one action ("everything matching" has no such bound).
MAX_SELECTED_IDS = 1000


def ids_arg(args: Mapping[str, Any]) -> list[int] | None:
    """The selected message ids (`ids=1&ids=2` or `ids=1,2`), de-duplicated; None when absent.

    400 (field `ids`) when a value is not a message id or more than MAX_SELECTED_IDS are given.
    """
    raw = args.getlist(IDS) if hasattr(args, "getlist") else [args.get(IDS) or ""]
    parts = [p.strip() for value in raw for p in str(value or "").split(",") if p.strip()]
    if not parts:
        return None
    if len(parts) > MAX_SELECTED_IDS:
        raise DomainError(
            f"At most {MAX_SELECTED_IDS} messages can be selected at once "
            f"(got {len(parts)}): act on everything matching the filter instead.",
            field=IDS,
        )
    bad = next((p for p in parts if not p.isdigit() or len(p) > 18), None)
    if bad is not None:
        raise DomainError(f"ids must be message ids (got {bad[:40]!r})", field=IDS)
    return sorted({int(p) for p in parts})


#: Name of the bound a bulk preview carries into its confirmation.
THROUGH_ID = "through_id"


def through_id_arg(args: Mapping[str, Any]) -> int | None:
    """The `through_id` bound of a bulk confirmation (None when absent); 400 when malformed."""
    raw = (args.get(THROUGH_ID) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise DomainError("through_id must be a message id", field=THROUGH_ID)
    return int(raw)


def newest_message_id() -> int:
    """The highest message id stored now (0 when there is none): the bound of a bulk preview."""
    return db.session.execute(select(func.coalesce(func.max(Message.id), 0))).scalar_one()


def apply_list_filter(
    stmt, args: Mapping[str, Any], acknowledged: str | None = None, scope: Scope | None = None
):
    """The message list's own filter (same parsing, same 400 on bad input; with `scope`, the
    same 403 for filters it may not use: Scope.check_filters).

    `acknowledged` overrides the filter's acknowledged state (un-acknowledging works on the
    acknowledged messages, which the list hides by default).
    """
    from ..messages.filters import MessageFilter

    flt = MessageFilter.from_args(args)
    if scope is not None:
        scope.check_filters(flt)
    if acknowledged is not None:
        flt = flt.replace(acknowledged=acknowledged)
    return flt.apply(stmt)


def count_matching(stmt, limit: int | None = None) -> int:
    """Exact count of a message-id SELECT (optionally capped)."""
    if limit is not None:
        stmt = stmt.limit(limit)
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def job(job_id: int) -> AuditLog:
    """A bulk re-ingestion job (its audit row)."""
    row = db.session.get(AuditLog, job_id)
    if row is None or row.action != "bulk-reingest":
        raise DomainError(f"job {job_id} not found", 404)
    return row


def set_statement_timeout(milliseconds: int) -> None:
    """Bound a bulk preview count so a huge filter cannot hold a web worker."""
    db.session.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def preview_count(stmt) -> int | None:
    """Exact count of a bulk preview's message-id SELECT; None when it takes too long."""
    try:
        with db.session.begin_nested():
            set_statement_timeout(PREVIEW_COUNT_TIMEOUT_MS)
            return count_matching(stmt)
    except OperationalError:
        logger.info("bulk preview count timed out")
        return None


def reingest_preview_count(stmt, settings: Any) -> int | None:
    """`preview_count` of the messages of `stmt` whose exchange re-ingest may publish to."""
    from .targets import allowed_clause

    return preview_count(stmt.where(allowed_clause(settings)))


def expected_arg(raw: str | None) -> int | None:
    """The `expected` count a bulk confirmation carries (None when absent); 400 if not a number."""
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        raise DomainError("expected must be a number", field="expected") from None
