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


# ---- the monthly level ----------------------------------------------------------------------------

#: Batches around the edges of UTC months (and one years earlier, so that "all" has a monthly
#: axis and its series reads months too).
MONTH_TIMES = [
    datetime(2023, 6, 15, 12, 30, tzinfo=UTC),
    datetime(2026, 1, 30, 5, 10, tzinfo=UTC),
    datetime(2026, 1, 31, 23, 40, tzinfo=UTC),
    datetime(2026, 2, 1, 0, 5, tzinfo=UTC),
    datetime(2026, 2, 14, 9, 0, tzinfo=UTC),
    datetime(2026, 2, 28, 23, 59, tzinfo=UTC),
    datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 17, 18, 45, tzinfo=UTC),
    datetime(2026, 3, 31, 22, 15, tzinfo=UTC),
    datetime(2026, 4, 1, 1, 30, tzinfo=UTC),
    datetime(2026, 4, 2, 16, 0, tzinfo=UTC),
]


@pytest.fixture
def month_spread(write_reports, pg):
    """As `spread`, at MONTH_TIMES; every third batch's errors acknowledged, then one of those
    un-acknowledged again (an unack changes the monthly rows through the daily ones)."""
    ids = []
    for n, when in enumerate(MONTH_TIMES):
        ids.append(
            write_reports(
                *basic_mix(),
                ok_body(instrument="BL06", ms=(0, 2000 + 100 * n)),
                error_body(
                    error=f"TimeoutError: ICAT did not answer after {n} s", instrument="BL04"
                ),
                now=when,
            )
        )
    with pg.cursor() as cur:
        acked = [i for batch in ids[::3] for i in batch]
        cur.execute(
            "UPDATE messages SET acknowledged_at = now(), acknowledged_by = 't' "
            "WHERE errored AND id = ANY(%s)",
            (acked,),
        )
        cur.execute(
            "UPDATE messages SET acknowledged_at = NULL, acknowledged_by = NULL WHERE id = ANY(%s)",
            (ids[3],),
        )
    pg.commit()
    return ids


MONTH_RANGES = [
    # partial days, whole days, two whole months, whole days, partial day
    ("2026-01-30T05:00:00Z", "2026-04-02T17:00:00Z"),
    # whole months only
    ("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"),
    # a whole month with whole days on one side, partial hours on the other
    ("2026-01-31T00:00:00Z", "2026-03-01T03:00:00Z"),
    ("2026-01-31T23:00:00Z", "2026-04-01T00:00:00Z"),
    # across a month edge without a whole month
    ("2026-01-31T12:00:00Z", "2026-02-27T00:00:00Z"),
    ("2023-01-01T00:00:00Z", "2026-04-03T00:00:00Z"),
]
MONTH_URLS = [*URLS, "/errors?{}", "/errors?{}&acknowledged=shown"]


@pytest.mark.parametrize(("since", "until"), MONTH_RANGES)
def test_whole_months_days_and_hours_equal_the_hourly_computation(
    client, db, month_spread, monkeypatch, since, until
):
    args = f"since={since}&until={until}"
    mixed = {}
    with no_messages_scan(db.engine) as statements:
        for url in MONTH_URLS:
            response = client.get(url.format(args))
            mixed[url] = response.get_json() if "/api/" in url else response.get_data(True)
    levels = queries.split_levels(
        datetime.fromisoformat(since), datetime.fromisoformat(until), whole_months=True
    )
    reads_monthly = any(level == "month" for level, _, _ in levels)
    # The tiles may also read a month minus its days outside the range (signed_levels).
    signed = queries.signed_levels(datetime.fromisoformat(since), datetime.fromisoformat(until))
    tiles_monthly = any(level == "month" for _, level, _, _ in signed)
    assert any("message_stats_monthly" in s for s in statements) == tiles_monthly
    assert any("error_group_stats_monthly" in s for s in statements) == reads_monthly
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    for url in MONTH_URLS:
        response = client.get(url.format(args))
        got = response.get_json() if "/api/" in url else response.get_data(True)
        assert got == mixed[url], url
    assert mixed[URLS[0]]["summary"]["total"] > 0
    assert mixed[URLS[4]]["items"]


def test_all_history_over_months_matches_hourly(client, db, month_spread, monkeypatch):
    with no_messages_scan(db.engine) as statements:
        stats = client.get("/api/v1/stats?range=all").get_json()
        errors = client.get("/api/v1/error-groups?range=all&acknowledged=shown").get_json()
        open_errors = client.get("/api/v1/error-groups?range=all").get_json()
    assert stats["series"]["granularity"] == "month"
    assert any("message_stats_monthly" in s for s in statements)
    assert any("error_group_stats_monthly" in s for s in statements)
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    assert client.get("/api/v1/stats?range=all").get_json() == stats
    assert client.get("/api/v1/error-groups?range=all&acknowledged=shown").get_json() == errors
    assert client.get("/api/v1/error-groups?range=all").get_json() == open_errors


def test_split_levels_takes_whole_utc_months():
    t = datetime(2026, 1, 30, 5, tzinfo=UTC)
    d = datetime(2026, 1, 31, tzinfo=UTC)
    feb, apr = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    end = datetime(2026, 4, 2, 17, tzinfo=UTC)
    assert queries.split_levels(t, end, whole_months=True) == [
        ("hour", t, d),
        ("day", d, feb),
        ("month", feb, apr),
        ("day", apr, apr + timedelta(days=1)),
        ("hour", apr + timedelta(days=1), end),
    ]
    # Without whole_months (a series by days or weeks), the same range reads days.
    assert queries.split_levels(t, end) == [
        ("hour", t, d),
        ("day", d, apr + timedelta(days=1)),
        ("hour", apr + timedelta(days=1), end),
    ]
    assert queries.split_levels(feb, apr, whole_months=True) == [("month", feb, apr)]
    mar = datetime(2026, 3, 1, tzinfo=UTC)
    assert queries.split_levels(d, mar - timedelta(days=1), whole_months=True) == [
        ("day", d, mar - timedelta(days=1))
    ]
    assert queries.split_levels(d, apr - timedelta(days=1), whole_months=True) == [
        ("day", d, feb),
        ("month", feb, mar),
        ("day", mar, apr - timedelta(days=1)),
    ]
    assert queries.split_levels(feb, apr, hourly_only=True, whole_months=True) == [
        ("hour", feb, apr)
    ]


def _hours(level, lo, hi):
    out, t = [], lo
    while t < hi:
        out.append(t)
        t += timedelta(hours=1)
    return out


def test_signed_levels_cover_each_hour_of_the_range_once():
    """Every hour of [since, until) is counted once by the signed parts, no hour outside it,
    whatever the edges; parts are whole buckets of their level; and no more buckets are read
    than split_levels reads (month = 1, day = 1, hour = 1)."""
    import random
    from collections import Counter

    def cost(parts):
        n = 0
        for level, lo, hi in parts:
            if level == "month":
                n += (hi.year - lo.year) * 12 + hi.month - lo.month
            else:
                n += (hi - lo) // timedelta(hours=1 if level == "hour" else 24)
        return n

    rng = random.Random(17)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for _ in range(3000):
        since = base + timedelta(hours=rng.randrange(24 * 800))
        span = rng.choice(
            [rng.randrange(1, 50), rng.randrange(1, 24 * 40), rng.randrange(24 * 800)]
        )
        until = since + timedelta(hours=span + 1)
        signed = queries.signed_levels(since, until)
        counted = Counter()
        for sign, level, lo, hi in signed:
            assert lo < hi
            if level != "hour":
                assert lo == lo.replace(hour=0) and hi == hi.replace(hour=0)
            if level == "month":
                assert lo.day == 1 and hi.day == 1
            for hour in _hours(level, lo, hi):
                counted[hour] += sign
        assert {h: n for h, n in counted.items() if n} == dict.fromkeys(
            _hours("hour", since, until), 1
        ), (since, until)
        natural = queries.split_levels(since, until, whole_months=True)
        assert cost([p[1:] for p in signed]) <= cost(natural), (since, until)


def test_thirty_days_tiles_read_a_month_minus_days_and_few_hours():
    """A 30-day range from 01:00 (no whole month in it): the tiles read the month it mostly
    covers minus the days before it, and the day of its first hour minus that hour, not 29
    days and 23 hours."""
    since = datetime(2026, 11, 5, 1, tzinfo=UTC)
    until = datetime(2026, 12, 5, 2, tzinfo=UTC)
    day, nov, dec = (
        timedelta(days=1),
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert sorted(queries.signed_levels(since, until)) == sorted(
        [
            (1, "month", nov, dec),
            (-1, "day", nov, datetime(2026, 11, 5, tzinfo=UTC)),
            (-1, "hour", datetime(2026, 11, 5, tzinfo=UTC), since),
            (1, "day", dec, dec + 4 * day),
            (1, "hour", dec + 4 * day, until),
        ]
    )
    # Without a whole day, hours as before.
    t = datetime(2026, 3, 10, 22, tzinfo=UTC)
    assert queries.signed_levels(t, t + timedelta(hours=9)) == [
        (1, "hour", t, t + timedelta(hours=9))
    ]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        # a month minus its last days (data on 2026-02-28 subtracted)
        ("2026-01-31T12:00:00Z", "2026-02-27T00:00:00Z"),
        # a day minus its first hours (Feb 1 00:05 subtracted), February, a day minus its last
        # hours (Mar 17 18:45 subtracted), March minus its last days (Mar 31 22:15 subtracted)
        ("2026-02-01T03:00:00Z", "2026-03-17T14:00:00Z"),
        # February minus its first days (Feb 1 00:05 subtracted), March
        ("2026-02-03T02:00:00Z", "2026-03-31T23:00:00Z"),
    ],
)
def test_signed_tiles_equal_the_hourly_computation(
    client, db, month_spread, monkeypatch, since, until
):
    """Tiles read as a month or day minus what lies outside the range (with rows in the parts
    subtracted) answer what summing the hourly rows answers, for the page and the API."""
    args = f"since={since}&until={until}"
    signed = queries.signed_levels(datetime.fromisoformat(since), datetime.fromisoformat(until))
    assert any(sign < 0 for sign, _, _, _ in signed)
    urls = ["/api/v1/stats?{}", "/api/v1/stats?{}&instrument=BL06", "/stats?{}"]
    with no_messages_scan(db.engine):
        mixed = [client.get(u.format(args)).get_data(True) for u in urls]
    assert '"total":0' not in mixed[0].replace(" ", "")
    monkeypatch.setattr(queries, "split_range", _hourly_only)
    assert [client.get(u.format(args)).get_data(True) for u in urls] == mixed
