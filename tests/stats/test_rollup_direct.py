"""The ingestion writer folds each batch into the hourly, daily and monthly rollups itself
(`rollups.upsert_batch`); the daily and monthly triggers return at once inside that fold
(`rollups.DIRECT_SETTING`) and keep every other writer's changes exact as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import parse_options
from tests.stats.support import basic_mix, error_body, ok_body
from tests.stats.test_rollups import _assert_daily_consistent, _expected, _snapshot
from webapp.ingest.writer import RawReport, write_batch
from webapp.stats import rollups


def _write(pg, settings, bodies: list[bytes], now: datetime):
    return write_batch(
        pg, [RawReport(b, "application/json") for b in bodies], parse_options(settings), now=now
    )


def _count(pg, table: str) -> int:
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - the tests' own table names
        return cur.fetchone()[0]


def test_the_daily_and_monthly_triggers_return_at_once_under_the_writers_setting(db, pg):
    row = (
        "INSERT INTO message_stats (bucket, message_type, instrument, total, errored, "
        "sum_processing_ms, max_processing_ms, timed, processing_histogram) "
        "VALUES ('2026-03-01 10:00+00', 't', '', 1, 0, 0, 0, 0, '{}')"
    )
    with pg.cursor() as cur:
        cur.execute(f"SELECT set_config('{rollups.DIRECT_SETTING}', 'on', true)")
        cur.execute(row)
        cur.execute("UPDATE message_stats SET total = total + 1")
    assert _count(pg, "message_stats_daily") == 0
    assert _count(pg, "message_stats_monthly") == 0
    pg.rollback()
    # Without it (every writer but ingestion) the triggers fold the change in.
    with pg.cursor() as cur:
        cur.execute(row)
        cur.execute("UPDATE message_stats SET total = total + 1")
    assert _count(pg, "message_stats_daily") == 1
    assert _count(pg, "message_stats_monthly") == 1
    pg.rollback()


def test_the_setting_is_off_again_when_the_fold_is_done(db, pg, settings):
    now = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
    with pg.cursor() as cur:
        rollups.upsert_batch(cur, [], {}, now)
        reports = [report for _, report in _parsed(settings, basic_mix())]
        ids = {r.report_id: n for n, r in enumerate(reports, 1)}
        rollups.upsert_batch(cur, reports, ids, now)
        cur.execute(f"SELECT current_setting('{rollups.DIRECT_SETTING}', true)")
        assert cur.fetchone()[0] == "off"
    pg.rollback()


def _parsed(settings, bodies):
    from webapp.ingest.writer import classify

    parsed, rejected = classify(
        [RawReport(b, "application/json") for b in bodies], parse_options(settings)
    )
    assert not rejected
    return parsed


def test_a_batch_reopening_an_acknowledged_hour_keeps_every_level_exact(db, pg, settings):
    """The fold's one subtle case: an hour whose errors were all acknowledged (closed: no
    open_* in its day and month) gets a new error; the day's and the month's open first seen
    and sample must then be the hour's, not only the new batch's."""
    hour = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # the last day of a month
    _write(pg, settings, basic_mix(), hour + timedelta(minutes=5))
    _write(pg, settings, [error_body(), ok_body()], hour + timedelta(minutes=10))
    with pg.cursor() as cur:
        cur.execute("UPDATE messages SET acknowledged_at = now() WHERE errored")
    pg.commit()
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM error_group_stats_daily WHERE open_sample_message_id IS NULL"
        )
        assert cur.fetchone()[0] > 0  # closed days
    _write(
        pg, settings, [error_body(), error_body(error="TimeoutError: x")], hour.replace(minute=50)
    )
    # And the next hour, day and month in one go.
    _write(pg, settings, basic_mix(), hour + timedelta(hours=2, minutes=1))
    stats = _expected(pg)[0]
    assert _snapshot(pg)[0] == stats
    # Daily and monthly rows (open_* included) == the hourly rows summed per day / month.
    _assert_daily_consistent(pg, stats)
