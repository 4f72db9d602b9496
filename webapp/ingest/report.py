"""Parse one report body into the row we store, or say precisely why it is not a report.

Everything here is pure (no I/O) so each real-traffic fact of DESIGN §3 is tested directly.
The body is untrusted: size is checked before decoding, JSON constants (NaN) and deep nesting are
refused, strings PostgreSQL cannot store (NUL, lone surrogates) send the body to quarantine, and
XML is only ever parsed with defusedxml (no entities, no DTDs, no network).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator
from pydantic_core import from_json

from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS

from ..stats.services import ErrorCause, fingerprint

#: Kwargs we map to columns; everything else is kept in `extra`.
KNOWN_KWARGS = frozenset(
    {
        "object_identifiers",
        "error_message",
        "processing_start",
        "processing_end",
        "processed_at",
        "hash",
        "message_type",
        "type",
        "payload_format",
        "payload",
        "errored",
        "exchange_name",
        "routing_key",
        "traceback",
    }
)
MAX_DEPTH = 64
MAX_SEARCH_TEXT = 4000
MAX_ID_LENGTH = 256
#: Python-repr payloads are evaluated (ast.literal_eval, no code) only below this size.
MAX_REPR_BYTES = 1_000_000


class NotAReport(ValueError):
    """The body is not a valid report; `reason` says why (stored with the quarantined body)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Kwargs(BaseModel):
    """The report kwargs as PACER sends them (old and new producers). Unknown keys are allowed."""

    model_config = ConfigDict(extra="allow")

    message_type: StrictStr | None = None
    type: StrictStr | None = None
    object_identifiers: dict[str, Any] | None = None
    error_message: dict[str, Any] | StrictStr | None = None
    processing_start: StrictStr | None = None
    processing_end: StrictStr | None = None
    processed_at: StrictStr | None = None
    hash: StrictStr | None = None
    payload_format: StrictStr | None = None
    payload: Any = None
    errored: StrictBool | None = None
    exchange_name: StrictStr | None = None
    routing_key: StrictStr | None = None
    traceback: dict[str, Any] | StrictStr | None = None

    @field_validator("payload")
    @classmethod
    def _payload_kind(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | dict | list):
            return value
        raise ValueError("must be a string, an object, a list or null")


@dataclass
class ParsedReport:
    """A valid report, ready to insert (columns of `messages` except id/received_at)."""

    report_id: str
    message_type: str
    processing_start: datetime | None
    processing_end: datetime | None
    processing_ms: int | None
    hash: str | None
    payload_format: str
    payload: str | None
    errored: bool
    error_message: Any
    traceback: Any
    exchange_name: str | None
    routing_key: str | None
    object_identifiers: dict[str, Any]
    # One field per promoted identifier of models/identifiers.py (`instrument`, ...: the value
    # of its column, `str | None`), filled by `promote_identifiers`.
    for _identifier in PROMOTED_IDENTIFIERS:
        __annotations__[_identifier] = "str | None"
    del _identifier
    error_cause: ErrorCause | None
    search_text: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error_fingerprint(self) -> str | None:
        return self.error_cause.fingerprint if self.error_cause else None


def body_digest(body: bytes) -> str:
    """Report id for bodies without an envelope `id`: a digest of the exact bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def parse_report(
    body: bytes,
    *,
    task_name: str,
    timezone: tzinfo = UTC,
    max_bytes: int = 8 * 1024 * 1024,
) -> ParsedReport:
    """Validate and normalise one report body. Raises NotAReport with the reason."""
    if len(body) > max_bytes:
        raise NotAReport(f"body is {len(body)} bytes, over REPORT_MAX_BYTES ({max_bytes})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotAReport(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        envelope = decode_json(text)
    except RecursionError:
        raise NotAReport("body is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise NotAReport(f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(envelope, dict):
        raise NotAReport(f"body is JSON {type(envelope).__name__}, not an object")
    # Cheap C-level pre-checks decide whether the (slower) structure walks are needed at all.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(envelope) > MAX_DEPTH:
        raise NotAReport(f"body is nested deeper than {MAX_DEPTH} levels")
    lowered = text.lower() if "\\u" in text else ""
    if "\\u0000" in lowered or "\\ud" in lowered:
        problem = _unstorable(envelope)
        if problem:
            raise NotAReport(problem)

    task = envelope.get("task")
    if "kwargs" in envelope or task is not None:
        if task != task_name:
            raise NotAReport(f"task is {str(task)[:100]!r}, expected {task_name!r}")
        raw_kwargs = envelope.get("kwargs")
        if not isinstance(raw_kwargs, dict):
            raise NotAReport("kwargs is missing or not an object")
    else:
        # A bare kwargs object (no Celery envelope) from a hand-written producer.
        raw_kwargs = envelope

    report_id = envelope.get("id") if raw_kwargs is not envelope else None
    if report_id is not None and (
        not isinstance(report_id, str) or not report_id.strip() or len(report_id) > MAX_ID_LENGTH
    ):
        raise NotAReport(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    report_id = report_id or body_digest(body)

    try:
        kwargs = Kwargs.model_validate(raw_kwargs)
    except ValidationError as exc:
        raise NotAReport("invalid kwargs: " + _validation_reason(exc)) from None
    message_type = kwargs.message_type or kwargs.type
    if not message_type or not message_type.strip():
        raise NotAReport("kwargs has neither message_type nor type")
    message_type = message_type.strip()
    if len(message_type) > 200:
        raise NotAReport("message_type is longer than 200 characters")

    start = _timestamp(kwargs.processing_start, "processing_start", timezone)
    end = _timestamp(kwargs.processing_end, "processing_end", timezone)
    if start is None and end is None and kwargs.processed_at:
        start = end = _timestamp(kwargs.processed_at, "processed_at", timezone)
    elif start is None:
        start = end
    # Unknown (NULL), not 0 ms, unless both stamps were sent and differ: `processed_at` alone,
    # one stamp, or start == end (PACER versions without a receive stamp) say nothing about the
    # duration, and a 0 would drag every average and histogram down (DESIGN §3, README notes).
    processing_ms = None
    if (
        kwargs.processing_start
        and kwargs.processing_end
        and start is not None
        and end is not None
        and end > start
    ):
        processing_ms = min(int((end - start).total_seconds() * 1000), 2**31 - 1)

    payload_text, payload_format, decoded, repr_decoded = decode_payload(kwargs.payload)
    error_message = kwargs.error_message if kwargs.error_message is not None else {}
    if isinstance(error_message, dict):
        error_message = {
            str(k): v if isinstance(v, str) else _to_text(v) for k, v in error_message.items()
        }
    errored = kwargs.errored if kwargs.errored is not None else _has_errors(error_message)

    identifiers = kwargs.object_identifiers or {}
    promoted = promote_identifiers(message_type, identifiers, decoded)
    cause = fingerprint(message_type, error_message) if errored else None

    extra = {k: v for k, v in raw_kwargs.items() if k not in KNOWN_KWARGS}
    if kwargs.payload_format:
        extra["payload_format_hint"] = kwargs.payload_format
    if repr_decoded:
        extra["payload_is_python_repr"] = True
    if kwargs.type and not kwargs.message_type:
        extra["legacy_type_field"] = True

    return ParsedReport(
        report_id=report_id,
        message_type=message_type,
        processing_start=start,
        processing_end=end,
        processing_ms=processing_ms,
        hash=(kwargs.hash or None) and kwargs.hash.strip().lower()[:200],
        payload_format=payload_format,
        payload=payload_text,
        errored=errored,
        error_message=error_message,
        traceback=kwargs.traceback,
        exchange_name=kwargs.exchange_name or None,
        routing_key=kwargs.routing_key if kwargs.routing_key is not None else None,
        object_identifiers=identifiers,
        error_cause=cause,
        search_text=_search_text(report_id, kwargs.hash, identifiers, error_message),
        extra=extra,
        **promoted,
    )


def decode_payload(payload: Any) -> tuple[str | None, str, Any, bool]:
    """(raw text, format, decoded object or None, decoded-from-python-repr).

    The raw text is exactly what was sent (strings) or a JSON rendering (objects), so re-ingestion
    publishes what PACER consumed. The format is detected; `payload_format` is only a hint.
    """
    if payload is None:
        return None, "text", None, False
    if isinstance(payload, dict | list):
        return _PAYLOAD_ENCODE(payload), "json", payload, False
    text = payload
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return text, "json", decode_json(stripped), False
        except (ValueError, RecursionError):
            pass
        if len(stripped) <= MAX_REPR_BYTES:
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = None
            if isinstance(value, dict | list):
                return text, "json", value, True
    if stripped.startswith("<") and looks_like_xml(stripped):
        return text, "xml", None, False
    return text, "text", None, False


#: `json.dumps(payload, ensure_ascii=False)` without building an encoder per call.
_PAYLOAD_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def looks_like_xml(text: str) -> bool:
    """Well-formed XML, or XML refused only for its DTD/entities (still shown as XML, unexpanded)."""
    try:
        SafeET.fromstring(text)
        return True
    except DefusedXmlException:
        return True
    except (SafeET.ParseError, ValueError):
        return False


def promote_identifiers(
    message_type: str, identifiers: dict[str, Any], decoded_payload: Any
) -> dict[str, str | None]:
    """Values of the promoted columns (models/identifiers.py): the first usable candidate of
    each (its identifier, a fallback key such as proposal-sync's `name` for the investigation,
    the payload's top-level instrument), normalised (instrument lower-cased)."""
    out: dict[str, str | None] = {}
    for identifier in IDENTIFIERS:
        # The first candidate is always the identifier itself: usually usable, and then the
        # other candidates need not be gathered.
        value = _scalar(identifiers.get(identifier.name))
        if value is None:
            candidates = identifier.candidates(message_type, identifiers, decoded_payload)
            value = next((v for v in map(_scalar, candidates) if v is not None), None)
        out[identifier.name] = identifier.normalise(value)
    return out


# Timestamps -------------------------------------------------------------------------------------

_OFFSET_RE = re.compile(r"\s*([+-])(\d{2}):?(\d{2})$")
_FRACTION_RE = re.compile(r"([.,])(\d+)")


def parse_timestamp(value: str, timezone: tzinfo = UTC) -> datetime:
    """ISO 8601 (T or space, `Z`, `+zz:zz`, `+zzzz`, comma or dot fraction of any length).

    Naive values are local time of the PACER host, i.e. `timezone`. Raises ValueError.
    """
    text = value.strip()
    if not text or len(text) > 64:
        raise ValueError("empty or too long")
    if len(text) in (19, 26) and text[10] == "T":  # the usual PACER shape: fast path
        parsed = datetime.fromisoformat(text)
        return _to_utc(parsed, timezone)
    tz_suffix = ""
    if text.endswith(("Z", "z")):
        text, tz_suffix = text[:-1], "+00:00"
    else:
        match = _OFFSET_RE.search(text)
        if match and len(text) > 10:
            text = text[: match.start()]
            tz_suffix = f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    text = _FRACTION_RE.sub(lambda m: "." + (m.group(2) + "000000")[:6], text.rstrip(), count=1)
    return _to_utc(datetime.fromisoformat(text.replace(" ", "T", 1) + tz_suffix), timezone)


def _to_utc(parsed: datetime, timezone: tzinfo) -> datetime:
    if parsed.tzinfo is None:
        # Deliberately fold=0 (README, design notes): a naive time in the hour repeated at the end
        # of daylight saving time is its first occurrence (the DST offset); one in the hour
        # skipped at its start is read with the offset before the jump (Madrid 02:30 on the
        # spring day = 01:30 UTC, the instant 03:30 CEST names).
        parsed = parsed.replace(tzinfo=timezone, fold=0)
    parsed = parsed.astimezone(UTC)
    if not 1970 <= parsed.year <= 2200:
        raise ValueError("year out of range")
    return parsed


def _timestamp(value: str | None, name: str, timezone: tzinfo) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value, timezone)
    except (ValueError, OverflowError):
        raise NotAReport(f"{name} is not a timestamp: {value[:64]!r}") from None


# Helpers ----------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for every body (json.loads with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_json(text: str) -> Any:
    """`_DECODER.decode(text)`, in about half the time for the usual body.

    pydantic-core's JSON parser (jiter, Rust) decodes first; it agrees with the standard library
    on every document it accepts (same values, types, key order, last duplicate key wins: tests/
    ingest/test_fast_decode.py) and refuses a superset of what the standard library refuses (NaN,
    Infinity, unpaired surrogates, integers over 4,300 digits, deep nesting). Whatever it refuses
    goes to the standard library's decoder, so every error, and so every quarantine reason, is
    the standard library's own.
    """
    try:
        return from_json(text, allow_inf_nan=False, cache_strings=False)
    except ValueError:
        return _DECODER.decode(text)


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth, iteratively (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest >= limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store this (NUL characters, lone surrogates), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character, which PostgreSQL text cannot store"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains an unpaired UTF-16 surrogate (invalid Unicode)"
    return None


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "kwargs"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _has_errors(error_message: Any) -> bool:
    if isinstance(error_message, dict):
        return any(v not in (None, "") for v in error_message.values())
    return bool(error_message and error_message.strip() not in ("[]", "{}", "None"))


def _to_text(value: Any) -> str:
    return value if isinstance(value, str) else _JSON_ENCODE(value)


#: `json.dumps(value, ensure_ascii=False, default=str)` (which builds this encoder on every call).
_JSON_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value).strip()[:500] or None


def _search_text(report_id: str, hash_: str | None, identifiers: dict, errors: Any) -> str:
    """Lower-cased identifiers and error text for trigram free-text search.

    Ids and hashes have their own exact/prefix filters and indexes; leaving their random
    characters out keeps the trigram index small and ingestion fast.
    """
    parts: list[str] = []
    for key, value in identifiers.items():
        parts.append(f"{key}={_to_text(value)}")
    if isinstance(errors, dict):
        parts.extend(f"{k} {v}" for k, v in errors.items())
    elif errors:
        parts.append(str(errors))
    return " ".join(p for p in parts if p).lower()[:MAX_SEARCH_TEXT]
