"""Processing time unknown (issue 19 §2.5): start == end, or a single stamp, is NULL, not 0 ms.

Reports of each historical shape: legacy `type`/`processed_at`/string errors, `processing_start`/
`processing_end`, `exchange_name`/`routing_key` with dict errors.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo

import pytest

from tests.factories import report_body
from webapp.ingest.report import parse_report

TASK = "dashboard.tasks.log_pacer_message"
SAME = "2026-03-31T10:15:02.123456"


def parse(raw: bytes):
    return parse_report(raw, task_name=TASK, timezone=zoneinfo.ZoneInfo("UTC"))


def legacy(**over) -> bytes:
    """The oldest shape: `type`, `processed_at`, string errors, no exchange/routing key."""
    kwargs = {
        "type": "user-sync",
        "processed_at": "2026-03-31 10:15:02.123 +0200",
        "error_message": "[('callback_func_sync', KeyError('x'))]",
        "hash": "a" * 64,
        "object_identifiers": {"profile_id": 17},
        "payload": "{}",
        **over,
    }
    envelope = {"id": str(uuid.uuid4()), "task": TASK, "args": [], "kwargs": kwargs}
    return json.dumps(envelope).encode()


def middle(**over) -> bytes:
    """processing_start/processing_end, no exchange_name/routing_key."""
    return report_body(exchange_name=None, routing_key=None, **over)


SHAPES = {
    "legacy processed_at": legacy(),
    "start/end equal": middle(processing_start=SAME, processing_end=SAME),
    "exchange + dict errors, equal stamps": report_body(
        processing_start=SAME,
        processing_end=SAME,
        errored=True,
        error_message={"callback_func_a": "KeyError: 'x'"},
    ),
    "exchange, end only": report_body(processing_start=None, processing_end=SAME),
    "aware equal stamps": report_body(
        processing_start="2026-03-31T12:15:02+02:00", processing_end="2026-03-31T10:15:02Z"
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_no_distinct_stamps_is_unknown_not_zero(name):
    r = parse(SHAPES[name])
    assert r.processing_ms is None
    assert r.processing_end is not None  # the time itself is still known and stored


def test_distinct_stamps_still_give_a_duration():
    assert parse(middle()).processing_ms == 864
    assert parse(report_body(processing_end="2026-03-31T10:15:02.123457")).processing_ms == 0
