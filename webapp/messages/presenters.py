"""Turn message rows into what pages, the API, the CSV export and live pushes show.

The one place that decides which fields of a message a scope sees: `summary(row, scope)` (a list
row) and `detail(message, scope)` (one message) pass everything through `scope.visible()` (the
field rule of webapp/auth/scope.py). Templates, JSON and socket frames only ever see these dicts:
when the scope may not see details, payloads, identifiers, error texts and who acknowledged are
simply absent, and templates render what is there (they never decide what is visible).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.dom.minidom import Node
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml import minidom as safe_minidom

from models import Message
from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS

from ..auth.scope import Scope

#: Payloads larger than this are shown as received (pretty-printing them would not help).
MAX_PRETTY_BYTES = 2 * 1024 * 1024
#: Python-literal payloads are evaluated (ast.literal_eval, no code) only up to this size.
MAX_LITERAL_BYTES = 256 * 1024
#: Identifiers shown in a list row, in this order, before any other identifier.
KEY_IDENTIFIERS = (*PROMOTED_IDENTIFIERS, "name")
MAX_ROW_IDENTIFIERS = 4
MAX_SUMMARY_CHARS = 200
SHORT_HASH = 12

MIME_TYPES = {"json": "application/json", "xml": "application/xml", "text": "text/plain"}
EXTENSIONS = {"json": "json", "xml": "xml", "text": "txt"}


def summary(row: Any, scope: Scope) -> dict[str, Any]:
    """One list row (a summary Row or a Message) as `scope` may see it (Scope.visible)."""
    details = scope.details
    out: dict[str, Any] = {
        "id": row.id,
        "received_at": row.received_at,
        "processing_start": row.processing_start,
        "processing_end": row.processing_end,
        "processing_ms": row.processing_ms,
        "message_type": row.message_type,
        "status": "errored" if row.errored else "ok",
        "errored": row.errored,
        "acknowledged": row.acknowledged_at is not None,
        "acknowledged_at": row.acknowledged_at,
        "exchange_name": row.exchange_name,
        "routing_key": row.routing_key,
        "hash": row.hash,
        "payload_format": row.payload_format,
        "report_id": row.report_id,
        "details": details,
    }
    if details:  # not computed for nothing: Scope.visible would drop them
        out["identifiers"] = row.object_identifiers or {}
        out.update((name, getattr(row, name)) for name in PROMOTED_IDENTIFIERS)
        out["error_fingerprint"] = row.error_fingerprint
        out["error_summary"] = error_summary(row.error_message)
    return scope.visible(out)


def detail(message: Any, scope: Scope) -> dict[str, Any]:
    """One message (a `models.Message`) as `scope` may see it: the summary, plus with details the
    raw payload, errors per callback with their tracebacks, the extras; for the message page
    (with `payload_view`), the API and the socket alike."""
    out = summary(message, scope)
    if scope.details:
        out.update(
            payload=message.payload,
            error_message=message.error_message,
            traceback=message.traceback,
            extra=message.extra or {},
            errors=[
                {"callback": e.callback, "text": e.text, "traceback": e.traceback}
                for e in error_entries(message.error_message, message.traceback)
            ],
        )
    return scope.visible(out)


def same_identifier_links(detail: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, filter argument, value) of the promoted identifiers a `summary()`/`detail()` dict
    shows: the message page's "same instrument / investigation / ..." list links."""
    return [(i.label.lower(), i.name, detail[i.name]) for i in IDENTIFIERS if detail.get(i.name)]


def acknowledged_by(message: Any, scope: Scope) -> str | None:
    """Who acknowledged `message`, when `scope` may see it (an actor's name is not metadata)."""
    return scope.visible({"acknowledged_by": message.acknowledged_by}).get("acknowledged_by")


def payload_view(detail: dict[str, Any]) -> RenderedPayload | None:
    """The payload of a `detail()` dict for display, or None when the scope does not see it."""
    if "payload" not in detail:
        return None
    return render_payload(
        detail["payload"],
        detail["payload_format"],
        from_literal=bool(detail["extra"].get("payload_is_python_repr")),
    )


#: Arguments of the message list's filter form, in its order (identifiers as declared).
FORM_FILTERS = (
    "type",
    "status",
    "acknowledged",
    *(i.name for i in IDENTIFIERS if i.in_filter_form),
    "hash",
    "id",
    "routing_key",
    "payload_format",
    "q",
    "since",
    "until",
)


def filter_form(scope: Scope) -> dict[str, Any]:
    """What the message list's filter form offers `scope`: the arguments it may use
    (Scope.can_filter), the identifier fields with their labels, and whether details are hidden."""
    return {
        "fields": [name for name in FORM_FILTERS if scope.can_filter(name)],
        "identifiers": [i for i in IDENTIFIERS if i.in_filter_form and scope.can_filter(i.name)],
        # Kept in the URL, no field of their own.
        "hidden_identifiers": [i.name for i in IDENTIFIERS if not i.in_filter_form],
        "details_hidden": not scope.details,
    }


def row_identifiers(identifiers: dict[str, Any]) -> list[tuple[str, str]]:
    """The few (key, value) identifier pairs a list row shows, most useful first."""
    keys = [k for k in KEY_IDENTIFIERS if k in identifiers]
    keys += sorted(k for k in identifiers if k not in KEY_IDENTIFIERS)
    return [(k, _text(identifiers[k])) for k in keys[:MAX_ROW_IDENTIFIERS]]


def error_summary(error_message: Any) -> str | None:
    """The first error text, shortened, for a list row."""
    if not error_message:
        return None
    if isinstance(error_message, dict):
        callback, value = next(iter(error_message.items()))
        text = f"{callback}: {_text(value)}"
    else:
        text = _text(error_message)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


@dataclass(frozen=True)
class ErrorEntry:
    """One callback's error, with its traceback when the report carried one."""

    callback: str | None
    text: str
    traceback: str | None = None


def error_entries(error_message: Any, traceback: Any) -> list[ErrorEntry]:
    """Errors per callback (dict), or one entry for a legacy string; tracebacks matched by name."""
    tracebacks = traceback if isinstance(traceback, dict) else {}
    entries: list[ErrorEntry] = []
    if isinstance(error_message, dict):
        for callback, value in error_message.items():
            tb = tracebacks.get(callback)
            entries.append(ErrorEntry(callback, _text(value), _text(tb) if tb else None))
    elif error_message:
        entries.append(ErrorEntry(None, _text(error_message)))
    named = {e.callback for e in entries}
    # Tracebacks without a matching error (or a plain-string traceback) are still shown.
    for callback, tb in tracebacks.items():
        if callback not in named and tb:
            entries.append(ErrorEntry(callback, "(traceback only)", _text(tb)))
    if traceback and not isinstance(traceback, dict):
        entries.append(ErrorEntry(None, "(traceback)", _text(traceback)))
    return entries


@dataclass(frozen=True)
class RenderedPayload:
    """A payload for display: the raw text always, a pretty form when it could be made safely."""

    format: str
    raw: str
    pretty: str | None
    note: str | None = None

    @property
    def mime_type(self) -> str:
        return MIME_TYPES.get(self.format, "text/plain")

    @property
    def size(self) -> int:
        return len(self.raw.encode("utf-8", "surrogatepass"))


def render_payload(
    raw: str | None, payload_format: str, from_literal: bool = False
) -> RenderedPayload:
    """Pretty JSON or XML (parsed with defusedxml: no DTD, no entity expansion) or the text."""
    raw = raw or ""
    if len(raw) > MAX_PRETTY_BYTES:
        return RenderedPayload(
            payload_format, raw, None, "Large payload: shown as received, not reformatted."
        )
    if payload_format == "json":
        return _render_json(raw, from_literal)
    if payload_format == "xml":
        return _render_xml(raw)
    return RenderedPayload(payload_format or "text", raw, None)


def _render_json(raw: str, from_literal: bool) -> RenderedPayload:
    try:
        value = json.loads(raw)
        note = None
    except (ValueError, RecursionError):
        if not from_literal or len(raw) > MAX_LITERAL_BYTES:
            return RenderedPayload("json", raw, None, "Not valid JSON: shown as received.")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return RenderedPayload("json", raw, None, "Not valid JSON: shown as received.")
        note = "Sent as a Python literal; shown converted to JSON. Copy/download give the original."
    try:
        pretty = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        return RenderedPayload("json", raw, None, "Could not be reformatted: shown as received.")
    return RenderedPayload("json", raw, pretty, note)


def _render_xml(raw: str) -> RenderedPayload:
    try:
        document = safe_minidom.parseString(raw, forbid_dtd=True)
    except DefusedXmlException:
        return RenderedPayload(
            "xml",
            raw,
            None,
            "XML with a DTD or entity declarations is not parsed (entities are never expanded): "
            "shown as received.",
        )
    except (ExpatError, ValueError, RecursionError):
        return RenderedPayload("xml", raw, None, "Not well-formed XML: shown as received.")
    try:
        _strip_blank_text(document)
        pretty = document.toprettyxml(indent="  ")
    except RecursionError:
        return RenderedPayload("xml", raw, None, "Too deeply nested to reformat.")
    if not raw.lstrip().startswith("<?xml"):
        # toprettyxml adds a declaration the producer did not send.
        pretty = pretty.split("\n", 1)[1] if pretty.startswith("<?xml") else pretty
    return RenderedPayload("xml", raw, pretty.rstrip("\n"))


def _strip_blank_text(node: Any) -> None:
    for child in list(node.childNodes):
        if child.nodeType == Node.TEXT_NODE and not child.data.strip():
            node.removeChild(child)
        elif child.hasChildNodes():
            _strip_blank_text(child)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


# ---- CSV export -----------------------------------------------------------------------------------
#: The CSV export's metadata columns (every scope sees them), ...
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
#: ... then the promoted identifiers (models/identifiers.py) and what is read from the error text
#: (only with details: see csv_columns).
CSV_DETAIL_COLUMNS = (*PROMOTED_IDENTIFIERS, "error_summary", "error_fingerprint")


#: What the export reads, in CSV_COLUMNS (+ CSV_DETAIL_COLUMNS) order: no identifiers object
#: (the CSV has the promoted identifier columns), so no jsonb is decoded that the file omits.
CSV_QUERY_COLUMNS = (
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


def csv_columns(scope: Scope) -> tuple[str, ...]:
    """The CSV header for `scope`: the columns it may see (Scope.can_see)."""
    return tuple(c for c in CSV_COLUMNS + CSV_DETAIL_COLUMNS if scope.can_see(c))


def csv_rows(rows: Iterable[Any], scope: Scope) -> Iterator[list[str]]:
    """The cells of export rows (tuples of CSV_QUERY_COLUMNS) under `csv_columns(scope)`."""
    # The detail cells exactly when the header has the detail columns.
    details = len(csv_columns(scope)) > len(CSV_COLUMNS)
    for row in rows:
        yield _csv_values(row, details)


def _csv_values(row: Any, details: bool) -> list[str]:
    """One CSV line's cells: the values `summary` gives, built straight from the row tuple (the
    export's per-row cost is its throughput)."""
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
        cells.append(_csv_cell(error_summary(error_message)))
        cells.append(_csv_cell(fingerprint))
    return cells


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
