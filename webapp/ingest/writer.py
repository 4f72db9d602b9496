"""Write a batch of report bodies in one transaction (DESIGN §4.2, §5).

`write_batch` is the only way reports reach the database, for the worker and for quarantine replay:
receipts (dedupe) → messages → quarantine → hourly rollups → error groups → heartbeat → NOTIFY, one
commit. If PostgreSQL rejects the batch for a data reason, each report is retried alone and the
ones it still rejects are quarantined with the database's reason: one bad report never blocks the
queue. Connection failures propagate so the caller stops acking and backs off.

The rollups (what a batch adds to `message_stats`, `error_groups`, `error_group_stats`, in the
rollup lock order of RELIABILITY.md "Rollup rows") are defined in webapp.stats.rollups, with the
rebuild and the daily triggers.
"""

from __future__ import annotations

import io
import json
import logging
import operator
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection as PgConnection

from models.identifiers import PROMOTED_IDENTIFIERS
from models.messages import NOTIFY_CHANNEL

from ..stats import services as stats
from .report import NotAReport, ParsedReport, parse_report

logger = logging.getLogger(__name__)

WORKER_NAME = f"ingest:{socket.gethostname()}:{os.getpid()}"

MESSAGE_COLUMNS = (
    "received_at",
    "report_id",
    "message_type",
    "processing_start",
    "processing_end",
    "processing_ms",
    "hash",
    "payload_format",
    "payload",
    "errored",
    "error_message",
    "traceback",
    "exchange_name",
    "routing_key",
    "object_identifiers",
    *PROMOTED_IDENTIFIERS,
    "error_fingerprint",
    "search_text",
    "extra",
)


@dataclass
class RawReport:
    """One delivery as received: the body and what the broker told us about it."""

    body: bytes
    content_type: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = None


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    message_ids: list[int] = field(default_factory=list)
    #: report_id -> message id, for the reports stored by this batch.
    ids_by_report: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class ParseOptions:
    task_name: str
    timezone: tzinfo
    max_bytes: int


def classify(reports: Sequence[RawReport], options: ParseOptions):
    """Split deliveries into parsed reports and (raw, reason) for quarantine."""
    parsed: list[tuple[RawReport, ParsedReport]] = []
    rejected: list[tuple[RawReport, str]] = []
    for raw in reports:
        try:
            parsed.append(
                (
                    raw,
                    parse_report(
                        raw.body,
                        task_name=options.task_name,
                        timezone=options.timezone,
                        max_bytes=options.max_bytes,
                    ),
                )
            )
        except NotAReport as exc:
            rejected.append((raw, exc.reason))
        except Exception as exc:  # noqa: BLE001 - a parser bug must quarantine, not crash the step
            logger.exception("parser failed on a body; quarantined")
            rejected.append((raw, f"parser error: {type(exc).__name__}: {exc}"[:500]))
    return parsed, rejected


@dataclass
class PreparedBatch:
    """A batch parsed and turned into COPY rows, ready for `write_prepared`.

    Preparing is pure Python (no database): the worker does it for the next batch while the
    database is busy with the current one.
    """

    raws: Sequence[RawReport]
    parsed: list[tuple[RawReport, ParsedReport]]
    rejected: list[tuple[RawReport, str]]
    #: report_id -> the COPY text of its row without `id` and `received_at` (set at write time);
    #: for a report id seen twice in the batch, the first one (the one that is stored).
    copy_rows: dict[str, str]


def prepare_batch(reports: Sequence[RawReport], options: ParseOptions) -> PreparedBatch:
    """Parse `reports` and build their COPY rows; never touches the database."""
    parsed, rejected = classify(reports, options)
    copy_rows: dict[str, str] = {}
    for _, report in parsed:
        if report.report_id not in copy_rows:
            copy_rows[report.report_id] = _copy_row(report)
    return PreparedBatch(reports, parsed, rejected, copy_rows)


def write_batch(
    conn: PgConnection,
    reports: Sequence[RawReport],
    options: ParseOptions,
    *,
    now: datetime | None = None,
) -> BatchResult:
    """Parse and store `reports` in one transaction; commit. See the module docstring."""
    return write_prepared(conn, prepare_batch(reports, options), options, now=now)


def write_prepared(
    conn: PgConnection,
    prepared: PreparedBatch,
    options: ParseOptions,
    *,
    now: datetime | None = None,
) -> BatchResult:
    """Store a prepared batch in one transaction; commit."""
    started = time.perf_counter()
    reports = prepared.raws
    received_at = now or datetime.now(UTC)
    try:
        result = _write(conn, prepared, received_at)
        conn.commit()
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        # The database is unreachable: nothing is stored, the caller must not ack.
        _safe_rollback(conn)
        raise
    except Exception as exc:  # noqa: BLE001 - the database (or the driver) refused the data
        _safe_rollback(conn)
        if len(reports) == 1:
            # A single report the database refuses: quarantine it with the reason.
            reason = f"database rejected the report: {type(exc).__name__}: {exc}"
            reason = reason.splitlines()[0][:500]
            logger.warning("%s", reason)
            quarantine = PreparedBatch(reports, [], [(reports[0], reason)], {})
            result = _write(conn, quarantine, received_at)
            conn.commit()
        else:
            logger.warning("batch of %d rejected (%s); retrying one by one", len(reports), exc)
            result = BatchResult()
            for raw in reports:
                one = write_batch(conn, [raw], options, now=received_at)
                result.stored += one.stored
                result.duplicates += one.duplicates
                result.quarantined += one.quarantined
                result.message_ids += one.message_ids
                result.ids_by_report.update(one.ids_by_report)
            result.message_ids.sort()
    except BaseException:
        _safe_rollback(conn)
        raise
    result.seconds = time.perf_counter() - started
    return result


def _safe_rollback(conn: PgConnection) -> None:
    try:
        conn.rollback()
    except psycopg2.Error:
        pass


def _write(conn: PgConnection, prepared: PreparedBatch, received_at: datetime) -> BatchResult:
    parsed, rejected = prepared.parsed, prepared.rejected
    result = BatchResult()
    with conn.cursor() as cur:
        # Dedupe inside the batch, then against the receipts (redeliveries, replays).
        unique: dict[str, ParsedReport] = {}
        for _, report in parsed:
            if report.report_id in unique:
                result.duplicates += 1
            unique.setdefault(report.report_id, report)
        new_ids: set[str] = set()
        if unique:
            # Sorted: two workers inserting the same ids (a redelivery racing its original) then
            # take the row locks in the same order and wait for each other instead of deadlocking.
            # One array parameter, not a VALUES row per report: a fraction of the parsing and
            # planning on both sides; unnest keeps the array's order.
            cur.execute(
                "INSERT INTO report_receipts (report_id, received_at) "
                "SELECT report_id, %s FROM unnest(%s::text[]) AS r(report_id) "
                "ON CONFLICT DO NOTHING RETURNING report_id",
                (received_at, sorted(unique)),
            )
            new_ids = {r[0] for r in cur.fetchall()}
        result.duplicates += len(unique) - len(new_ids)
        fresh = [r for rid, r in unique.items() if rid in new_ids]

        if fresh:
            rows = _copy_messages(cur, fresh, prepared.copy_rows, received_at)
            result.ids_by_report = {report_id: mid for mid, report_id in rows}
            result.message_ids = sorted(result.ids_by_report.values())
            result.stored = len(rows)
            stats.upsert_batch(cur, fresh, result.ids_by_report, received_at)

        if rejected:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO quarantined_reports "
                "(received_at, body, reason, content_type, headers, routing_key) VALUES %s",
                [
                    (
                        received_at,
                        psycopg2.Binary(raw.body),
                        reason,
                        raw.content_type,
                        _json(_plain_headers(raw.headers)),
                        raw.routing_key,
                    )
                    for raw, reason in rejected
                ],
                page_size=len(rejected),
            )
            result.quarantined = len(rejected)
            for raw, reason in rejected:
                logger.warning("quarantined a %d-byte body: %s", len(raw.body), reason)

        _heartbeat(cur, result, received_at)
        if result.message_ids:
            cur.execute(
                "SELECT pg_notify(%s, %s)",
                (
                    NOTIFY_CHANNEL,
                    json.dumps(
                        {
                            "min_id": result.message_ids[0],
                            "max_id": result.message_ids[-1],
                            "count": result.stored,
                            "received_at": received_at.isoformat(),
                        }
                    ),
                ),
            )
    return result


def _copy_messages(
    cur, reports: list[ParsedReport], copy_rows: dict[str, str], received_at: datetime
) -> list[tuple]:
    """Insert with COPY (the fastest path into PostgreSQL); ids are drawn from the identity
    sequence first so the caller still learns each report's message id."""
    # The sequence as a constant: `nextval(pg_get_serial_sequence(...))` looked the sequence up
    # again for every row, several times the cost of drawing the value (bench/README.md).
    cur.execute(
        "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
        (_id_sequence(cur), len(reports)),
    )
    ids = [row[0] for row in cur.fetchall()]
    moment = "\t" + received_at.isoformat() + "\t"
    buffer = io.StringIO()
    for message_id, report in zip(ids, reports, strict=True):
        buffer.write(str(message_id))
        buffer.write(moment)
        buffer.write(copy_rows[report.report_id])
        buffer.write("\n")
    buffer.seek(0)
    cur.copy_expert(
        f"COPY messages (id, {', '.join(MESSAGE_COLUMNS)}) FROM STDIN", buffer, size=1 << 20
    )
    return [(message_id, report.report_id) for message_id, report in zip(ids, reports, strict=True)]


#: database name -> the sequence of `messages.id` (an identity column's sequence is named when
#: the table is created; only a migration could rename it): looked up once per database.
_ID_SEQUENCES: dict[str, str] = {}


def _id_sequence(cur) -> str:
    dbname = cur.connection.info.dbname
    name = _ID_SEQUENCES.get(dbname)
    if name is None:
        cur.execute("SELECT pg_get_serial_sequence('messages', 'id')")
        name = _ID_SEQUENCES[dbname] = cur.fetchone()[0]
    return name


def _copy_row(r: ParsedReport) -> str:
    """The COPY text of a report's row after `id` and `received_at` (MESSAGE_COLUMNS[1:]):
    `_message_row` rendered by `_copy_value`, with each column's type known in advance (the
    generic per-value type dispatch was half of the row's cost)."""
    text, ms = _copy_text, r.processing_ms
    return "\t".join(
        (
            text(r.report_id),
            text(r.message_type),
            "\\N" if r.processing_start is None else r.processing_start.isoformat(),
            "\\N" if r.processing_end is None else r.processing_end.isoformat(),
            "\\N" if ms is None else str(ms),
            text(r.hash),
            text(r.payload_format),
            text(r.payload),
            "t" if r.errored else "f",
            text(_json(r.error_message)),
            "\\N" if r.traceback is None else text(_json(r.traceback)),
            text(r.exchange_name),
            text(r.routing_key),
            text(_json(r.object_identifiers)),
            *[text(v) for v in _promoted_values(r)],
            text(r.error_fingerprint),
            text(r.search_text),
            text(_json(r.extra)),
        )
    )


def _copy_text(value: str | None) -> str:
    """`_copy_value` of a text column's value."""
    if value is None:
        return "\\N"
    if value.__class__ is not str:
        return _copy_value(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_value(value: Any) -> str:
    """One field in COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    text = str(value)
    # Chained str.replace (memchr-fast, usually nothing to do) instead of str.translate, which
    # looks every character up in a dict: ~100 µs for a 2 KB payload, the writer's biggest cost.
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


#: A report's promoted identifier values, in MESSAGE_COLUMNS order.
_promoted_values = operator.attrgetter(*PROMOTED_IDENTIFIERS)


def _message_row(r: ParsedReport) -> tuple:
    """The values of MESSAGE_COLUMNS[1:] (received_at is the batch's, set when it is written)."""
    return (
        r.report_id,
        r.message_type,
        r.processing_start,
        r.processing_end,
        r.processing_ms,
        r.hash,
        r.payload_format,
        r.payload,
        r.errored,
        _json(r.error_message),
        None if r.traceback is None else _json(r.traceback),
        r.exchange_name,
        r.routing_key,
        _json(r.object_identifiers),
        *_promoted_values(r),
        r.error_fingerprint,
        r.search_text,
        _json(r.extra),
    )


#: `json.dumps(value, ensure_ascii=False, default=str)` builds this encoder on every call.
_JSON_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _json(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most reports: no errors, no extras
    return _JSON_ENCODE(value)


def _plain_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(json.dumps(headers or {}, default=str))


def _heartbeat(cur, result: BatchResult, at: datetime) -> None:
    cur.execute(
        "INSERT INTO heartbeats (name, at, detail) VALUES (%s, %s, %s::jsonb) "
        "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at, detail = EXCLUDED.detail",
        (
            WORKER_NAME,
            at,
            _json(
                {
                    "last_batch_at": at.isoformat(),
                    "last_batch_size": result.stored + result.quarantined + result.duplicates,
                    "last_batch_stored": result.stored,
                    "last_batch_quarantined": result.quarantined,
                    "last_batch_duplicates": result.duplicates,
                }
            ),
        ),
    )
