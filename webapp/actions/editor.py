"""The re-ingest editor's server side: the payload pretty-printed for editing, the original bytes
kept when the operator does not edit, a diff for the confirmation step, one-time form tokens and
the reports that a re-ingest produced.

XML is parsed with defusedxml (no entities, no DTD-driven expansion, no external references);
a payload that does not parse is shown as received.
"""

from __future__ import annotations

import difflib
import json
import secrets
from datetime import timedelta
from typing import Any

from defusedxml import minidom as safe_minidom
from sqlalchemy import select, text

from models import AuditLog, Message

from ..auth.scope import Scope
from ..extensions import db
from ..messages.queries import SUMMARY_COLUMNS, scoped
from .targets import REINGEST_HEADER

#: Longest diff shown (lines); the rest is summarised.
MAX_DIFF_LINES = 2000
#: Advisory-lock class of the one-time form tokens (two-key form: its own key space).
_TOKEN_LOCK_CLASS = 16_016
#: Reports received this long before the re-ingest's audit row still count (clock skew).
ARRIVAL_MARGIN = timedelta(seconds=60)
MAX_FOLLOWUPS = 10


def pretty(payload: str | None, payload_format: str | None) -> str:
    """`payload` indented for editing (JSON: 2 spaces; XML: one element per line); as received
    when it does not parse or is of another format."""
    raw = payload or ""
    try:
        if payload_format == "json":
            return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        if payload_format == "xml":
            return _pretty_xml(raw)
    except Exception:  # noqa: BLE001 - malformed or refused: shown (and edited) as received
        return raw
    return raw


def _pretty_xml(raw: str) -> str:
    doc = safe_minidom.parseString(raw.encode("utf-8"))
    _drop_blank_text(doc)
    parts = [node.toprettyxml(indent="  ").rstrip("\n") for node in doc.childNodes]
    stripped = raw.lstrip()
    if stripped.startswith("<?xml"):
        parts.insert(0, stripped[: stripped.index("?>") + 2])
    return "\n".join(parts)


def _drop_blank_text(node: Any) -> None:
    for child in list(node.childNodes):
        if child.nodeType == child.TEXT_NODE and not child.data.strip():
            node.removeChild(child)
        else:
            _drop_blank_text(child)


def submitted_payload(message: Message, submitted: str) -> str:
    """What to publish: the original bytes when the operator left the (pretty) text unchanged."""
    text_ = submitted.replace("\r\n", "\n")
    original = message.payload or ""
    if text_ in (original, pretty(original, message.payload_format)):
        return original
    return text_


def diff_lines(message: Message, payload: str) -> list[tuple[str, str]]:
    """(kind, line) of a unified diff between the original (pretty) and `payload`; kind is one of
    `add`, `del`, `hunk`, `same`. Empty when nothing changed."""
    original = message.payload or ""
    if payload == original:
        return []
    before = pretty(original, message.payload_format).splitlines()
    after = payload.splitlines()
    lines: list[tuple[str, str]] = []
    for line in difflib.unified_diff(before, after, "original", "edited", lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append((kind, line))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(("hunk", f"… diff cut at {MAX_DIFF_LINES} lines"))
            break
    if not lines:  # only whitespace at the ends of lines or of the text differs
        lines.append(("hunk", "(only whitespace differs from the original)"))
    return lines


def new_form_token() -> str:
    return secrets.token_urlsafe(18)


def claim_form_token(message_id: int, token: str) -> bool:
    """True once per token: False when a re-ingest of this message already used it (a double
    submission). Holds a transaction lock on the token until the caller commits its audit row,
    so two concurrent submissions cannot both pass."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, hashtext(:token))"),
        {"cls": _TOKEN_LOCK_CLASS, "token": token},
    )
    used = db.session.scalar(
        select(AuditLog.id)
        .where(
            AuditLog.action == "reingest",
            AuditLog.message_ids.contains([message_id]),
            AuditLog.detail["form_token"].astext == token,
        )
        .limit(1)
    )
    return used is None


def reingest_row(message_id: int, audit_id: int) -> AuditLog | None:
    """The successful re-ingest audit row `audit_id` of this message, if it is one."""
    row = db.session.get(AuditLog, audit_id)
    if row is None or row.action != "reingest" or message_id not in (row.message_ids or []):
        return None
    return row


def arrivals(scope: Scope, message_id: int, since: Any) -> list[Any]:
    """Reports received since `since` whose header says they re-ingest `message_id` (newest
    first; scoped like every read)."""
    stmt = (
        scoped(scope, None, *SUMMARY_COLUMNS)
        .where(
            Message.received_at >= since - ARRIVAL_MARGIN,
            Message.extra["headers"][REINGEST_HEADER].astext == str(message_id),
        )
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(MAX_FOLLOWUPS)
    )
    return list(db.session.execute(stmt))


#: The result page asks for the new report every 2 s, this many times (2 minutes).
MAX_POLLS = 60
