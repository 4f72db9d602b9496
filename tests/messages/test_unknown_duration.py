"""Processing time unknown (issue 19 §2.5) on the pages, the API and the statistics."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.factories import report_body
from tests.ingest.test_unknown_processing_time import SAME, legacy


def test_unknown_is_shown_as_unknown_on_list_detail_and_null_in_api(client, write_reports):
    known, unknown = write_reports(
        report_body(), report_body(processing_start=SAME, processing_end=SAME)
    )
    detail = client.get(f"/messages/{unknown}").get_data(as_text=True)
    assert "<dt>Duration</dt><dd>unknown</dd>" in detail
    assert "0 ms" not in detail
    listing = client.get("/?acknowledged=shown").get_data(as_text=True)
    assert '<td class="num">unknown</td>' in listing
    assert '<td class="num">864 ms</td>' in listing
    assert client.get(f"/api/v1/messages/{unknown}").get_json()["processing_ms"] is None
    assert client.get(f"/api/v1/messages/{known}").get_json()["processing_ms"] == 864


def test_unknown_durations_stay_out_of_the_rollups_and_stats(client, pg, write_reports):
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    write_reports(
        report_body(processing_start=SAME, processing_end=SAME),
        legacy(),
        report_body(processing_end="2026-03-31T10:15:02.623456", processing_start=SAME),
        now=now,
    )
    with pg.cursor() as cur:
        cur.execute("SELECT sum(total), sum(timed), sum(sum_processing_ms) FROM message_stats")
        assert cur.fetchone() == (3, 1, 500)
    summary = client.get("/api/v1/stats?range=24h").get_json()["summary"]
    assert summary["total"] == 3
    assert summary["max_ms"] == 500
