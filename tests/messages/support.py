"""Helpers shared by the message, API and live tests: write reports like the worker does."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import report_body
from webapp.ingest.writer import ParseOptions, RawReport, write_batch


def parse_options(settings) -> ParseOptions:
    return ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)


def body(**kwargs: Any) -> bytes:
    """A report body (tests.conftest.report_body) with a unique hash unless one is given."""
    return report_body(**kwargs)


def write(pg, settings, bodies: Iterable[bytes], now: datetime | None = None) -> list[int]:
    """Write `bodies` in one batch (commit + NOTIFY); their message ids in the same order."""
    bodies = list(bodies)
    result = write_batch(
        pg, [RawReport(b, "application/json") for b in bodies], parse_options(settings), now=now
    )
    assert result.quarantined == 0, "a test report was quarantined"
    return [result.ids_by_report[json.loads(b)["id"]] for b in bodies]


@pytest.fixture
def write_reports(pg, settings):
    """Factory: write_reports(body, body, ..., now=datetime) -> message ids in order."""

    def _write(*bodies: bytes, now: datetime | None = None) -> list[int]:
        return write(pg, settings, bodies, now=now)

    return _write


@pytest.fixture
def count_queries(db):
    """Context manager factory counting SQL statements sent through the app's engine."""
    from contextlib import contextmanager

    @contextmanager
    def _count():
        statements: list[str] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return _count


def ack(pg, ids: Iterable[int], by: str = "tester") -> None:
    """Mark messages acknowledged (the actions area owns the real service)."""
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE messages SET acknowledged_at = now(), acknowledged_by = %s WHERE id = ANY(%s)",
            (by, list(ids)),
        )
    pg.commit()
