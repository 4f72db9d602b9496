"""Naive PACER stamps at daylight-saving transitions (issue 19 §2.1): fold=0, documented in the
README. Checked for each historical report shape."""

from __future__ import annotations

import json
import uuid
import zoneinfo
from datetime import UTC, datetime

import pytest

from tests.factories import report_body
from webapp.health import clock
from webapp.ingest.report import parse_report

TASK = "dashboard.tasks.log_pacer_message"
MADRID = zoneinfo.ZoneInfo("Europe/Madrid")
#: 2026-10-25: 02:00-03:00 happens twice in Madrid; 2026-03-29: 02:00-03:00 never happens.
REPEATED = "2026-10-25T02:30:00"
SKIPPED = "2026-03-29T02:30:00"


def shapes(stamp: str) -> dict[str, bytes]:
    legacy = {
        "type": "user-sync",
        "processed_at": stamp.replace("T", " ") + ".000",
        "error_message": "[('callback_func_sync', KeyError('x'))]",
        "object_identifiers": {"profile_id": 17},
    }
    return {
        "legacy type/processed_at": json.dumps(
            {"id": str(uuid.uuid4()), "task": TASK, "args": [], "kwargs": legacy}
        ).encode(),
        "processing_start/end": report_body(
            processing_start=stamp, processing_end=stamp, exchange_name=None, routing_key=None
        ),
        "exchange_name + dict errors": report_body(
            processing_start=stamp,
            processing_end=stamp,
            errored=True,
            error_message={"callback_func_a": "KeyError: 'x'"},
        ),
    }


def parse(raw: bytes):
    return parse_report(raw, task_name=TASK, timezone=MADRID)


@pytest.mark.unit
@pytest.mark.parametrize("shape", list(shapes(REPEATED)))
def test_repeated_hour_is_the_first_occurrence(shape):
    r = parse(shapes(REPEATED)[shape])
    assert r.processing_end == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert r.processing_end.fold == 0


@pytest.mark.unit
@pytest.mark.parametrize("shape", list(shapes(SKIPPED)))
def test_skipped_hour_uses_the_offset_before_the_jump(shape):
    r = parse(shapes(SKIPPED)[shape])
    assert r.processing_end == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # = 03:30 CEST


@pytest.mark.unit
def test_pair_across_the_repeated_hour_is_unknown_not_negative():
    # Start in the first 02:50, end in the second 02:10: both read as the first occurrence,
    # the end is before the start -> processing time unknown (never negative, never 0).
    r = parse(
        report_body(processing_start="2026-10-25T02:50:00", processing_end="2026-10-25T02:10:00")
    )
    assert r.processing_ms is None


@pytest.mark.unit
def test_health_check_leaves_the_repeated_hour_out():
    r = parse(shapes(REPEATED)["processing_start/end"])
    assert clock.in_repeated_hour(r.processing_end, MADRID)
    assert not clock.in_repeated_hour(parse(report_body()).processing_end, MADRID)
