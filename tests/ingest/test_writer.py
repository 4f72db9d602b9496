"""The batch writer on the real database: dedupe, quarantine, rollups, error groups, NOTIFY."""

from __future__ import annotations

import json
import select
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest

from models.messages import NOTIFY_CHANNEL
from tests.conftest import admin_dsn
from tests.factories import report_body
from webapp.ingest import writer
from webapp.ingest.report import ParsedReport
from webapp.ingest.writer import ParseOptions, RawReport, write_batch


@pytest.fixture
def options(settings):
    return ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)


def raw(body: bytes) -> RawReport:
    return RawReport(body, "application/json", {"x-h": "v"}, "message.logging")


def count(pg, sql: str) -> int:
    with pg.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_batch_stores_reports_and_quarantines_bodies(pg, options):
    result = write_batch(pg, [raw(report_body()), raw(b"{oops"), raw(report_body())], options)
    assert (result.stored, result.quarantined, result.duplicates) == (2, 1, 0)
    assert count(pg, "SELECT count(*) FROM messages") == 2
    with pg.cursor() as cur:
        cur.execute("SELECT body, reason, headers, routing_key FROM quarantined_reports")
        body, reason, headers, routing_key = cur.fetchone()
    assert bytes(body) == b"{oops" and "not JSON" in reason
    assert headers == {"x-h": "v"} and routing_key == "message.logging"


def test_same_envelope_twice_is_stored_once(pg, options):
    body = report_body(id="same-envelope")
    first = write_batch(pg, [raw(body), raw(body)], options)
    again = write_batch(pg, [raw(body)], options)
    assert (first.stored, first.duplicates) == (1, 1)
    assert (again.stored, again.duplicates) == (0, 1)
    assert count(pg, "SELECT count(*) FROM messages") == 1


def test_bodies_without_id_dedupe_on_their_digest(pg, options):
    envelope = json.loads(report_body())
    del envelope["id"]
    body = json.dumps(envelope).encode()
    write_batch(pg, [raw(body)], options)
    write_batch(pg, [raw(body)], options)
    assert count(pg, "SELECT count(*) FROM messages WHERE report_id LIKE 'sha256:%'") == 1


def test_rollups_and_error_groups_follow_the_batch(pg, options):
    now = datetime(2026, 11, 23, 10, 42, tzinfo=UTC)
    bodies = [
        report_body(object_identifiers={"instrument": "BL13"}),
        report_body(
            object_identifiers={"instrument": "bl13"},
            errored=True,
            error_message={"callback_func_a": "InvestigationNotFound: Investigation 1 not found"},
        ),
        report_body(
            object_identifiers={"instrument": "BL13"},
            errored=True,
            error_message={"callback_func_a": "InvestigationNotFound: Investigation 2 not found"},
        ),
    ]
    write_batch(pg, [raw(b) for b in bodies], options, now=now)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT bucket, message_type, instrument, total, errored, sum_processing_ms, "
            "max_processing_ms, timed FROM message_stats"
        )
        assert cur.fetchall() == [
            (
                datetime(2026, 11, 23, 10, tzinfo=UTC),
                "dataset-ingestion",
                "bl13",
                3,
                2,
                2592,
                864,
                3,
            )
        ]
        cur.execute("SELECT count, callback, exception_class, normalized_text FROM error_groups")
        assert cur.fetchall() == [
            (2, "callback_func_a", "InvestigationNotFound", "Investigation <name> not found")
        ]


def test_notify_after_commit_carries_the_ids(pg, options, app):
    listener = psycopg2.connect(admin_dsn(app.extensions["settings"].POSTGRES_DB))
    listener.autocommit = True
    with listener.cursor() as cur:
        cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
    result = write_batch(pg, [raw(report_body()) for _ in range(3)], options)
    assert select.select([listener], [], [], 5)[0]
    listener.poll()
    payload = json.loads(listener.notifies.pop(0).payload)
    listener.close()
    assert payload["count"] == 3
    assert (payload["min_id"], payload["max_id"]) == (result.message_ids[0], result.message_ids[-1])


def test_a_report_the_database_refuses_is_quarantined_alone(pg, options, monkeypatch):
    """One bad report never blocks the queue: the others of its batch are stored."""
    real_classify = writer.classify

    def poisoning(reports, opts):
        parsed, rejected = real_classify(reports, opts)
        for _, report in parsed:
            if report.hash == "poison":
                report.payload = "cannot\x00store"
        return parsed, rejected

    monkeypatch.setattr(writer, "classify", poisoning)
    bodies = [report_body(), report_body(hash="poison"), report_body()]
    result = write_batch(pg, [raw(b) for b in bodies], options)
    assert (result.stored, result.quarantined) == (2, 1)
    assert count(pg, "SELECT count(*) FROM messages") == 2
    with pg.cursor() as cur:
        cur.execute("SELECT reason FROM quarantined_reports")
        assert "database rejected the report" in cur.fetchone()[0]


def test_connection_failure_propagates_and_stores_nothing(pg, options, settings):
    # (pg.dsn hides the password, which the private PostgreSQL requires on TCP)
    broken = psycopg2.connect(admin_dsn(settings.POSTGRES_DB))
    broken.close()
    with pytest.raises(psycopg2.InterfaceError):
        write_batch(broken, [raw(report_body())], options)
    assert count(pg, "SELECT count(*) FROM messages") == 0


def test_parsed_report_keeps_every_column(pg, options):
    body = report_body(
        id=str(uuid.uuid4()),
        traceback={"callback_func_a": "Traceback ..."},
        consumer="C",
        error_message={"callback_func_a": "KeyError: 'x'"},
        errored=True,
    )
    write_batch(pg, [raw(body)], options)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT traceback, extra, error_message, payload_format, instrument, search_text "
            "FROM messages"
        )
        tb, extra, errors, fmt, instrument, search = cur.fetchone()
    assert tb == {"callback_func_a": "Traceback ..."}
    assert extra == {"consumer": "C"}
    assert errors == {"callback_func_a": "KeyError: 'x'"}
    assert (fmt, instrument) == ("json", "bl13")
    assert "keyerror" in search and "investigation=2022097034" in search
    assert ParsedReport  # the dataclass is the writer's input contract


def test_ids_come_from_the_identity_sequence_named_once_per_database(app, pg, options):
    """The sequence is a constant in the id statement (looking it up per row cost ~8x drawing
    the value): resolved once, ids still drawn from it in arrival order."""
    import logging

    from psycopg2.extras import LoggingConnection

    statements: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            statements.append(record.getMessage())

    log = logging.getLogger("test_writer.sql")
    log.addHandler(Capture())
    log.setLevel(logging.DEBUG)
    conn = psycopg2.connect(
        admin_dsn(app.extensions["settings"].POSTGRES_DB), connection_factory=LoggingConnection
    )
    conn.initialize(log)
    try:
        writer._ID_SEQUENCES.clear()
        first = write_batch(conn, [raw(report_body(id=f"seq-{n}")) for n in range(3)], options)
        second = write_batch(conn, [raw(report_body(id=f"seq-{n}")) for n in range(3, 5)], options)
    finally:
        conn.close()
    assert [first.ids_by_report[f"seq-{n}"] for n in range(3)] == first.message_ids
    assert min(second.message_ids) > max(first.message_ids)
    id_statements = [s for s in statements if "generate_series" in s]
    assert len(id_statements) == 2
    assert not any("pg_get_serial_sequence" in s for s in id_statements)
    assert sum("pg_get_serial_sequence" in s for s in statements) == 1
