"""Turn message rows into what pages, the API and live pushes show, honouring `scope.details`.

Templates and JSON only ever see these dicts: when the scope may not see details, payloads,
identifiers and error texts are simply absent (templates never decide what is visible).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any
from xml.dom.minidom import Node
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml import minidom as safe_minidom

from ..auth.scope import visible_fields

#: Payloads larger than this are shown as received (pretty-printing them would not help).
MAX_PRETTY_BYTES = 2 * 1024 * 1024
#: Python-literal payloads are evaluated (ast.literal_eval, no code) only up to this size.
MAX_LITERAL_BYTES = 256 * 1024
#: Identifiers shown in a list row, in this order, before any other identifier.
KEY_IDENTIFIERS = ("instrument", "investigation", "dataset", "dataset_id", "visit_id", "name")
MAX_ROW_IDENTIFIERS = 4
MAX_SUMMARY_CHARS = 200
SHORT_HASH = 12

MIME_TYPES = {"json": "application/json", "xml": "application/xml", "text": "text/plain"}
EXTENSIONS = {"json": "json", "xml": "xml", "text": "txt"}


def summary(row: Any, details: bool) -> dict[str, Any]:
    """One list row (a summary Row or a Message) as a dict, through the scope's field rule
    (webapp.auth.scope.visible_fields): sensitive fields only with `details`."""
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
    if details:
        out.update(
            identifiers=row.object_identifiers or {},
            instrument=row.instrument,
            investigation=row.investigation,
            dataset=row.dataset,
            dataset_id=row.dataset_id,
            visit_id=row.visit_id,
            error_fingerprint=row.error_fingerprint,
            error_summary=error_summary(row.error_message),
        )
    return visible_fields(out, details)


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
