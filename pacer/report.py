"""The report a consumer publishes after each delivery, in the dashboard's wire format.

DESIGN §3 [contract]: a Celery protocol-1 shaped JSON body for task
`dashboard.tasks.log_pacer_message`; everything is in `kwargs`, plus our optional extras
`traceback`, `consumer`, `host`, `attempt` and `headers`.
"""

from __future__ import annotations

import hashlib
import json
import re
import traceback
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

TASK_NAME = "dashboard.tasks.log_pacer_message"
CONTENT_TYPE = "application/json"
#: Header carrying the stage-1 payload hash through later pipeline stages.
HASH_HEADER = "x-pacer-hash"

_HASH = re.compile(r"[0-9a-f]{16}|[0-9a-f]{64}")


def payload_hash(body: bytes) -> str:
    """sha256 hex digest of the exact body bytes."""
    return hashlib.sha256(body).hexdigest()


def is_valid_hash(value: Any) -> bool:
    """True for the 16- or 64-hex-character hashes the dashboard accepts."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def format_exception(exc: BaseException) -> str:
    """`ExceptionClass: message`, the way PACER writes errors (ValidationError on one line)."""
    name = type(exc).__name__
    if isinstance(exc, ValidationError):
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        text = f"{exc.error_count()} validation error(s) for {exc.title}: {details}"
    else:
        text = str(exc)
    return f"{name}: {text}" if text else name


def format_traceback(exc: BaseException) -> str:
    """The full traceback text of an exception being handled."""
    return "".join(traceback.format_exception(exc))


def jsonable(value: Any) -> Any:
    """AMQP header values (datetimes, bytes, decimals in `x-death`) as JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def build_report(
    *,
    message_type: str,
    object_identifiers: dict[str, Any],
    error_message: dict[str, str],
    processing_start: datetime,
    processing_end: datetime,
    payload_hash: str,
    payload_format: str,
    payload: str,
    exchange_name: str,
    routing_key: str,
    tracebacks: dict[str, str],
    consumer: str,
    host: str,
    attempt: int,
    headers: dict[str, Any],
) -> dict[str, Any]:
    """The report envelope as a dict (json.dumps it to publish)."""
    return {
        "id": str(uuid.uuid4()),
        "task": TASK_NAME,
        "args": [],
        # Celery semantics: how many times this message was tried before.
        "retries": max(attempt - 1, 0),
        "kwargs": {
            "object_identifiers": jsonable(object_identifiers),
            "error_message": dict(error_message),
            "processing_start": processing_start.isoformat(),
            "processing_end": processing_end.isoformat(),
            "hash": payload_hash,
            "message_type": message_type,
            "payload_format": payload_format,
            "payload": payload,
            "errored": bool(error_message),
            "exchange_name": exchange_name,
            "routing_key": routing_key,
            "traceback": dict(tracebacks),
            "consumer": consumer,
            "host": host,
            "attempt": attempt,
            "headers": jsonable(headers),
        },
    }


def encode_report(report: dict[str, Any]) -> bytes:
    """UTF-8 JSON bytes of a report."""
    return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
