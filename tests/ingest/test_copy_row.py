"""The writer's COPY row (`_copy_row`, typed per column for speed) equals the generic rendering
of the row's values (`_copy_value` over `_message_row`) for any report."""

from __future__ import annotations

import json
from datetime import UTC

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import REPORT_TASK, report_body
from webapp.demo import generate_reports
from webapp.ingest.report import parse_report
from webapp.ingest.writer import _copy_row, _copy_value, _message_row

text = st.text(alphabet=st.sampled_from("ab\\\t\n\r é{}\"'"), max_size=12)


def _generic(report) -> str:
    return "\t".join(_copy_value(v) for v in _message_row(report))


def test_the_realistic_mix():
    for r in generate_reports(300, seed=3, payload_bytes=500):
        report = parse_report(json.dumps(r).encode(), task_name=r.get("task", REPORT_TASK))
        assert _copy_row(report) == _generic(report)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.one_of(st.none(), text),
    error=st.one_of(st.none(), text),
    traceback=st.one_of(st.none(), text, st.dictionaries(text, text, max_size=2)),
    instrument=st.one_of(st.none(), text, st.integers()),
    hash_=st.one_of(st.none(), text),
    routing_key=st.one_of(st.none(), text),
    timed=st.booleans(),
    extra=st.dictionaries(st.sampled_from(["x", "y\tz"]), text, max_size=2),
)
def test_any_report(payload, error, traceback, instrument, hash_, routing_key, timed, extra):
    fields = {
        "payload": payload,
        "error_message": {"cb": error} if error else {},
        "errored": bool(error),
        "traceback": traceback,
        "object_identifiers": {"instrument": instrument, "dataset": "d\\1"},
        "hash": hash_,
        "routing_key": routing_key,
        **extra,
    }
    if not timed:
        fields.update(processing_start=None, processing_end=None)
    report = parse_report(report_body(**fields), task_name=REPORT_TASK, timezone=UTC)
    assert _copy_row(report) == _generic(report)
