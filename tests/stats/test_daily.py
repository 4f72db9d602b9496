"""The daily rollups give /stats and /errors the numbers of the hourly ones: a range mixing
partial and whole days answers exactly what summing its hourly rows answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.auth.support import login
from tests.stats.support import basic_mix, error_body, no_messages_scan, ok_body
from webapp.stats import queries

#: Batches over five UTC days, at the edges of days and inside them.
START = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
OFFSETS_H = [1, 4, 5, 23, 24, 30, 47, 52, 71, 72, 90, 100, 101, 118, 119]


@pytest.fixture
def spread(write_reports, pg):
    """basic_mix() plus a slower ok message and a distinct error at each offset; every third
    batch's errors acknowledged (so some hours and days have only acknowledged errors)."""
    ids = []
    for n, hours in enumerate(OFFSETS_H):
        written = write_reports(
            *basic_mix(),
            ok_body(instrument="BL06", ms=(0, 2000 + 100 * n)),
            error_body(error=f"TimeoutError: ICAT did not answer after {n} s", instrument="BL04"),
            now=START + timedelta(hours=hours, minutes=n),
        )
        ids.append(written)
    with pg.cursor() as cur:
        acked = [i for batch in ids[::3] for i in batch]
        cur.execute(
            "UPDATE messages SET acknowledged_at = now(), acknowledged_by = 't' "
            "WHERE errored AND id = ANY(%s)",
            (acked,),
        )
    pg.commit()
    return ids


def _hourly_only(since, until, hourly_only=False):
    return [(False, since, until)]


RANGES = [
    # partial first day, three whole days, partial last day
    ("2026-03-10T05:00:00Z", "2026-03-14T17:00:00Z"),
    # whole days only
    ("2026-03-11T00:00:00Z", "2026-03-14T00:00:00Z"),
    # a partial day on one side only
    ("2026-03-10T03:00:00Z", "2026-03-13T00:00:00Z"),
    ("2026-03-11T00:00:00Z", "2026-03-15T02:00:00Z"),
    # within one day, and across one midnight without a whole day
    ("2026-03-11T02:00:00Z", "2026-03-11T20:00:00Z"),
    ("2026-03-10T22:00:00Z", "2026-03-11T07:00:00Z"),
]
URLS = [
    "/api/v1/stats?{}",
    "/api/v1/stats?{}&type=dataset-ingestion",
    "/api/v1/stats?{}&instrument=BL06",
    "/api/v1/error-groups?{}",
    "/api/v1/error-groups?{}&acknowledged=shown",
    "/api/v1/error-groups?{}&instrument=BL04&limit=3",
]


@pytest.mark.parametrize(("since", "until"), RANGES)
def test_mixed_days_and_hours_equal_the_hourly_computation(
    client, db, spread, monkeypatch, since, until
):
    args = f"since={since}&until={until}"
    mixed = {}
    with no_messages_scan(db.engine) as statements:
        for url in URLS:
            mixed[url] = client.get(url.format(args)).get_json()
    parts = queries.split_range(datetime.fromisoformat(since), datetime.fromisoformat(until))
    reads_daily = any(is_daily for is_daily, _, _ in parts)
    assert any("message_stats_daily" in s for s in statements) == reads_daily
    assert any("error_group_stats_daily" in s for s in statements) == reads_daily
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    for url in URLS:
        assert client.get(url.format(args)).get_json() == mixed[url], url
    # Something was counted, errors open and acknowledged included.
    assert mixed[URLS[0]]["summary"]["total"] > 0
    assert mixed[URLS[4]]["items"]


def test_unbounded_range_starts_at_the_first_hour_and_matches_hourly(client, spread, monkeypatch):
    mixed = client.get("/api/v1/stats?range=all").get_json()
    errors = client.get("/api/v1/error-groups?range=all&acknowledged=shown").get_json()
    # The first message is at START + 1 h (a Tuesday): weekly axis from that Monday.
    assert mixed["series"]["granularity"] == "week"
    assert mixed["series"]["buckets"][0] == (START - timedelta(days=1)).isoformat()
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    assert client.get("/api/v1/stats?range=all").get_json() == mixed
    assert client.get("/api/v1/error-groups?range=all&acknowledged=shown").get_json() == errors


def test_pages_over_whole_days_match_hourly_for_a_restricted_user(
    client, auth_enabled, make_group, make_user, spread, monkeypatch
):
    group = make_group("bl06", identifier_rules={"instrument": ["BL06"]})
    login(client, make_user("restricted", groups=[group]))
    args = "since=2026-03-10T05:00:00Z&until=2026-03-14T17:00:00Z"
    stats = client.get(f"/api/v1/stats?{args}").get_json()
    errors = client.get(f"/api/v1/error-groups?{args}").get_json()
    page = client.get(f"/errors?{args}").get_data(as_text=True)
    assert stats["source"] == "rollups"
    assert stats["summary"]["total"] == 3 * 11  # 3 BL06 messages in 11 of the batches
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    assert client.get(f"/api/v1/stats?{args}").get_json() == stats
    assert client.get(f"/api/v1/error-groups?{args}").get_json() == errors
    assert client.get(f"/errors?{args}").get_data(as_text=True) == page


def test_split_range_takes_whole_utc_days():
    t = datetime(2026, 3, 10, 5, tzinfo=UTC)
    d = datetime(2026, 3, 11, tzinfo=UTC)
    assert queries.split_range(t, t + timedelta(hours=3)) == [(False, t, t + timedelta(hours=3))]
    assert queries.split_range(t, d + timedelta(days=2, hours=4)) == [
        (False, t, d),
        (True, d, d + timedelta(days=2)),
        (False, d + timedelta(days=2), d + timedelta(days=2, hours=4)),
    ]
    assert queries.split_range(d, d + timedelta(days=1)) == [(True, d, d + timedelta(days=1))]
    assert queries.split_range(d, d + timedelta(days=1), hourly_only=True) == [
        (False, d, d + timedelta(days=1))
    ]
