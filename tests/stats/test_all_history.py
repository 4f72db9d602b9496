"""/stats and /errors over long ranges (issue 17, item 3): the first bucket, the type choices,
the weekly series and the monthly heatmap give what their former definitions gave (min and
DISTINCT over every row of the range, weeks and months summed in SQL), on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.stats.support import error_body, ok_body
from webapp.auth.scope import Rule, Scope, admin_scope
from webapp.errors_view import queries as error_queries
from webapp.extensions import db
from webapp.stats import queries
from webapp.stats.filters import EPOCH, StatsFilter

START = datetime(2025, 11, 3, 7, 0, tzinfo=UTC)  # a Monday: weeks and months cut differently
TYPES = ("dataset-ingestion", "user-sync", "proposal-sync", "dataset-index")


@pytest.fixture
def months(write_reports):
    """Batches every ~9 days over ~5 months, several types and instruments, some errors."""
    for n in range(17):
        moment = START + timedelta(days=9 * n, hours=5 * n)
        message_type = TYPES[n % len(TYPES)]
        bodies = [
            ok_body(message_type=message_type, instrument="BL13", ms=(0, 100 + n)),
            ok_body(message_type=TYPES[(n + 1) % len(TYPES)], instrument=f"BL0{n % 3}"),
        ]
        if n % 2:
            bodies.append(error_body(error=f"OSError: disk {n % 3} full", instrument="BL04"))
        write_reports(*bodies, now=moment)


def restricted() -> Scope:
    return Scope(
        details=True,
        restricted=True,
        rules=(Rule(identifiers=(("instrument", frozenset({"bl13", "bl04"})),)),),
    )


def filters(until: datetime) -> list[StatsFilter]:
    return [
        StatsFilter(since=EPOCH, until=until),
        StatsFilter(since=START + timedelta(days=20, hours=3), until=until),
        StatsFilter(since=START + timedelta(days=30), until=START + timedelta(days=101, hours=7)),
        StatsFilter(since=EPOCH, until=until, types=("user-sync",)),
        StatsFilter(since=EPOCH, until=until, instrument="bl13"),
        StatsFilter(since=START + timedelta(days=200), until=until),  # nothing in range
    ]


def former_first(scope, flt, source, hourly):
    """min(bucket) over the union of every row (the former definition)."""
    first = db.session.scalar(select(func.min(source(scope, flt).c.bucket)))
    if first is None or flt.since > EPOCH:
        return None if flt.since > EPOCH else first
    day = replace(flt, since=max(flt.since, first), until=min(flt.until, first + timedelta(days=1)))
    where = queries.rollup_where(hourly, scope, day, day.since, day.until)
    return db.session.scalar(select(func.min(hourly.bucket)).where(*where)) or first


def former_types(scope, flt):
    src = queries.stats_source(scope, StatsFilter(since=flt.since, until=flt.until))
    return list(
        db.session.scalars(select(src.c.message_type).distinct().order_by(src.c.message_type))
    )


def former_series_rows(scope, flt, unit):
    src = queries.stats_source(scope, flt, hourly_only=unit == "hour")
    t = queries.utc_trunc(unit, src.c.bucket)
    rows = db.session.execute(
        select(t, src.c.message_type, func.sum(src.c.total), func.sum(src.c.errored)).group_by(
            t, src.c.message_type
        )
    ).all()
    return {(w.astimezone(UTC), m): (int(n), int(e)) for w, m, n, e in rows}


@pytest.mark.parametrize("scope_of", [admin_scope, restricted])
def test_long_ranges_give_the_former_answers(app, db, months, scope_of):
    from models.stats import ErrorGroupStat, MessageStat

    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    scope = scope_of()
    with app.test_request_context():
        for flt in filters(until):
            first = queries.first_bucket(scope, flt, queries.stats_source, MessageStat)
            assert first == former_first(scope, flt, queries.stats_source, MessageStat), flt
            assert queries.first_bucket(
                scope, flt, error_queries.error_source, ErrorGroupStat
            ) == former_first(scope, flt, error_queries.error_source, ErrorGroupStat), flt
            assert queries.message_types(scope, flt) == former_types(scope, flt), flt

            report = queries.stats_report(scope, flt)
            series = report["series"]
            unit = series["granularity"]
            former = former_series_rows(scope, flt, unit)
            got = {
                (datetime.fromisoformat(b), t): (v["total"][i], v["errored"][i])
                for t, v in series["types"].items()
                for i, b in enumerate(series["buckets"])
                if v["total"][i] or v["errored"][i]
            }
            assert got == {k: v for k, v in former.items() if any(v)}, flt
            # The heatmap summed from the series' rows = the heatmap read by months.
            assert report["heatmap"] == queries.heatmap(scope, flt), flt
        everything = queries.stats_report(scope, filters(until)[0])
    assert everything["series"]["granularity"] == "week"
    assert len(everything["heatmap"]["months"]) >= 5
    assert everything["summary"]["total"] > 0


def test_all_history_reads_the_daily_rows_once_and_sums_weeks_in_sql(client, months, db):
    """The /stats page of all history reads the range's daily rows once, for its weekly series,
    summed into weeks by the database (not ~7 times more (day, type) rows summed here); the
    tiles and the heatmap take the whole months from the monthly rows, the type choices come
    from index probes."""
    from sqlalchemy import event

    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    client.get("/stats?range=all")
    event.listen(db.engine, "before_cursor_execute", before)
    try:
        assert client.get("/stats?range=all").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    summing = [s for s in statements if "message_stats_daily" in s and "sum(" in s]
    # The tiles, the series and the heatmap; only the series reads the whole range's days.
    assert len(summing) == 3, summing
    days_only = [s for s in summing if "message_stats_monthly" not in s]
    assert len(days_only) == 1, days_only
    assert "date_bin(" in days_only[0]
    assert not [s for s in statements if "DISTINCT" in s and "message_stats" in s]


@pytest.mark.parametrize("scope_of", [admin_scope, restricted])
def test_weekly_rows_are_weeks(app, db, months, scope_of):
    """The weekly series' rows are summed per UTC week by the database (date_bin): the same
    sums as utc_trunc('week') of the same rows, including hourly edge rows and restricted
    scopes."""
    from webapp.stats.queries import _series

    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    scope = scope_of()
    with app.test_request_context():
        for flt in filters(until):
            out, (unit, rows) = _series(scope, flt)
            if out["granularity"] != "week":
                continue
            assert unit == "week"
            got = {(w.astimezone(UTC), m): (int(n), int(e)) for w, m, n, e in rows}
            assert len(got) == len(rows)
            assert got == former_series_rows(scope, flt, "week"), flt
            assert all(w.weekday() == 0 and w.hour == 0 for w, _ in got), flt


def test_stats_reads_run_without_parallel_workers(client, months, db):
    """/stats and /api/v1/stats plan their rollup reads without parallel workers (a Gather's
    start-up costs more than their few thousand rows), and leave the setting as it was."""
    from sqlalchemy import event

    seen: list[tuple[str, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "message_stats" in statement or "error_group" in statement:
            with cursor.connection.cursor() as probe:
                probe.execute("SHOW max_parallel_workers_per_gather")
                seen.append((probe.fetchone()[0], statement))

    default = db.session.execute(db.text("SHOW max_parallel_workers_per_gather")).scalar()
    db.session.rollback()
    assert default != "0"
    for url in ("/stats?range=all", "/stats", "/api/v1/stats", "/api/v1/stats?range=all"):
        seen.clear()
        event.listen(db.engine, "before_cursor_execute", before)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
        assert seen, url
        assert {setting for setting, _ in seen} == {"0"}, url
    assert db.session.execute(db.text("SHOW max_parallel_workers_per_gather")).scalar() == default


def test_fallback_reads_keep_parallel_workers(app, db):
    """A scope the rollups cannot answer (a rule on the investigation) reads `messages`, maybe
    many rows: its plans are left to the planner."""
    fallback = Scope(
        details=True,
        restricted=True,
        rules=(Rule(identifiers=(("investigation", frozenset({"2022097034"})),)),),
    )
    show = db.text("SHOW max_parallel_workers_per_gather")
    with app.test_request_context():
        default = db.session.execute(show).scalar()
        assert default != "0"
        with queries.serial_plans(fallback):
            assert db.session.execute(show).scalar() == default
        with queries.serial_plans(restricted()):
            assert db.session.execute(show).scalar() == "0"
        assert db.session.execute(show).scalar() == default


@pytest.mark.parametrize("scope_of", [admin_scope, restricted])
def test_whole_months_give_the_answers_of_the_days(app, db, months, scope_of, monkeypatch):
    """Tiles, histogram and error groups read whole months from the monthly rollups: the same
    answers as from the daily ones (open-only and acknowledged-included groups alike)."""
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    scope = scope_of()

    def answers():
        out = []
        for flt in filters(until):
            out.append(
                (
                    queries.summary(scope, flt),
                    queries.histogram_counts(scope, flt),
                    queries.heatmap(scope, flt),
                    error_queries.error_groups(scope, flt),
                    error_queries.error_groups(scope, replace(flt, include_acknowledged=True)),
                )
            )
        return out

    with app.test_request_context():
        levels = [queries.split_levels(f.since, f.until, whole_months=True) for f in filters(until)]
        assert any(level == "month" for parts in levels for level, _, _ in parts)
        monthly = answers()
        split = queries.split_levels
        monkeypatch.setattr(
            queries,
            "split_levels",
            lambda since, until, hourly_only=False, whole_months=False: split(
                since, until, hourly_only
            ),
        )
        daily = answers()
    assert monthly == daily
    assert monthly[0][0].total > 0 and monthly[0][3]
