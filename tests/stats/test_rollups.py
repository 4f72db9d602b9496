"""Rollups equal a direct aggregate over `messages`, and `flask rollups rebuild` reproduces them;
the daily rollups equal the hourly ones summed per UTC day, whatever changed the hourly ones."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import truncate
from tests.factories import parse_options, report_body
from webapp.ingest.writer import RawReport, write_batch
from webapp.stats import histogram

TYPES = ["dataset-ingestion", "user-sync", "internal-dataset-ingestion"]
INSTRUMENTS = ["BL13", "bl13", "BL06", None]
ERRORS = [
    ("callback_func_main_dataset_creation", "InvestigationNotFound: Investigation {n} not found"),
    ("callback_func_main_dataset_creation", "FileNotFoundError: /dls/bl13/data/{n}/x.h5 missing"),
    ("callback_func_index", "TimeoutError: ICAT did not answer after {n} s"),
]
#: Batches land in different hours, days and months (a month boundary is crossed).
BASE = datetime(2026, 1, 31, 20, 15, tzinfo=UTC)

report = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "instrument": st.sampled_from(INSTRUMENTS),
        "error": st.one_of(st.none(), st.tuples(st.sampled_from(ERRORS), st.integers(0, 10**9))),
        "second_error": st.booleans(),
        "ms": st.one_of(st.none(), st.integers(0, 3_600_000)),
        "ack": st.booleans(),
    }
)
batch = st.tuples(st.integers(0, 24 * 40), st.lists(report, min_size=1, max_size=8))


def _body(r) -> bytes:
    kwargs = {"message_type": r["type"]}
    identifiers = {"investigation": "2022097034"}
    if r["instrument"] is not None:
        identifiers["instrument"] = r["instrument"]
    kwargs["object_identifiers"] = identifiers
    if r["error"] is not None:
        (callback, template), n = r["error"]
        errors = {callback: template.format(n=n)}
        if r["second_error"]:
            errors["callback_func_zz_later"] = f"ValueError: bad value {n}"
        kwargs.update(errored=True, error_message=errors)
    if r["ms"] is None:
        kwargs.update(processing_start=None, processing_end=None)
    else:
        start = datetime(2026, 1, 1, 10, 0, 0)
        kwargs.update(
            processing_start=start.isoformat(),
            processing_end=(start + timedelta(milliseconds=r["ms"])).isoformat(),
        )
    return report_body(id=str(uuid.uuid4()), **kwargs)


def _hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _expected(pg) -> tuple[dict, dict, dict]:
    """Direct aggregates over `messages`, computed here in Python from the raw rows."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT id, received_at, message_type, instrument, errored, processing_ms, "
            "error_fingerprint, acknowledged_at IS NOT NULL FROM messages"
        )
        rows = cur.fetchall()
    stats: dict = defaultdict(lambda: [0, 0, 0, 0, 0, []])
    groups: dict = {}
    per_fp: dict = {}
    for mid, received, mtype, instrument, errored, ms, fp, acked in rows:
        key = (_hour(received), mtype, instrument or "")
        s = stats[key]
        s[0] += 1
        s[1] += int(errored)
        if ms is not None:
            s[2] += ms
            s[3] = max(s[3], ms)
            s[4] += 1
            s[5].append(ms)
        if fp is None:
            continue
        g = groups.setdefault((fp, *key), [0, 0, received, received, mid])
        g[0] += 1
        g[1] += int(acked)
        g[2], g[3], g[4] = min(g[2], received), max(g[3], received), min(g[4], mid)
        f = per_fp.setdefault(fp, [0, received, received])
        f[0] += 1
        f[1], f[2] = min(f[1], received), max(f[2], received)
    stats_out = {k: (*v[:5], histogram.trim(histogram.histogram(v[5]))) for k, v in stats.items()}
    return (
        stats_out,
        {k: tuple(v) for k, v in groups.items()},
        {k: tuple(v) for k, v in per_fp.items()},
    )


def _snapshot(pg) -> tuple[dict, dict, dict]:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT bucket, message_type, instrument, total, errored, sum_processing_ms, "
            "max_processing_ms, timed, processing_histogram FROM message_stats"
        )
        stats = {tuple(r[:3]): (*r[3:8], histogram.trim(r[8])) for r in cur.fetchall()}
        cur.execute(
            "SELECT fingerprint, bucket, message_type, instrument, count, acknowledged, "
            "first_seen_at, last_seen_at, sample_message_id, sample_error FROM error_group_stats"
        )
        groups = {tuple(r[:4]): tuple(r[4:]) for r in cur.fetchall()}
        cur.execute(
            "SELECT fingerprint, count, first_seen_at, last_seen_at, message_type, callback, "
            "exception_class, normalized_text FROM error_groups"
        )
        per_fp = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
    return stats, groups, per_fp


def _day(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _month(t: datetime) -> datetime:
    return _day(t).replace(day=1)


def _daily_from_hourly(stats: dict, groups: dict, period=_day) -> tuple[dict, dict]:
    """The hourly rollups (as `_snapshot` returns them) summed per UTC day (`period`), in
    Python."""
    days: dict = {}
    for (bucket, mtype, instrument), (total, errored, sum_ms, max_ms, timed, hist) in stats.items():
        d = days.setdefault((period(bucket), mtype, instrument), [0, 0, 0, 0, 0, []])
        d[0], d[1], d[2], d[4] = d[0] + total, d[1] + errored, d[2] + sum_ms, d[4] + timed
        d[3] = max(d[3], max_ms)
        d[5] = histogram.add(d[5], hist)
    stats_daily = {k: (*v[:5], histogram.trim(v[5])) for k, v in days.items()}
    per_day: dict = defaultdict(list)
    for (fp, bucket, mtype, instrument), row in groups.items():
        per_day[(fp, period(bucket), mtype, instrument)].append(row)
    groups_daily = {}
    for key, rows in per_day.items():
        open_ = [r for r in rows if r[0] > r[1]]
        sample = min(rows, key=lambda r: r[4])
        open_sample = min(open_, key=lambda r: r[4]) if open_ else None
        groups_daily[key] = (
            sum(r[0] for r in rows),
            sum(r[1] for r in rows),
            min(r[2] for r in rows),
            max(r[3] for r in rows),
            sample[4],
            sample[5],
            min(r[2] for r in open_) if open_ else None,
            max(r[3] for r in open_) if open_ else None,
            open_sample[4] if open_sample else None,
            open_sample[5] if open_sample else None,
        )
    return stats_daily, groups_daily


def _daily_snapshot(pg, level: str = "daily") -> tuple[dict, dict]:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT bucket, message_type, instrument, total, errored, sum_processing_ms, "
            f"max_processing_ms, timed, processing_histogram FROM message_stats_{level}"
        )
        # Stored without trailing zero bins: compared as they are.
        stats = {tuple(r[:3]): (*r[3:8], list(r[8])) for r in cur.fetchall()}
        cur.execute(
            "SELECT fingerprint, bucket, message_type, instrument, count, acknowledged, "
            "first_seen_at, last_seen_at, sample_message_id, sample_error, open_first_seen_at, "
            "open_last_seen_at, open_sample_message_id, open_sample_error "
            f"FROM error_group_stats_{level}"
        )
        groups = {tuple(r[:4]): tuple(r[4:]) for r in cur.fetchall()}
    return stats, groups


def _assert_daily_consistent(pg, exp_stats: dict | None = None) -> tuple[dict, dict]:
    """Daily rows == hourly rows summed per day (and, given, == `messages` summed per day);
    monthly rows == hourly rows summed per month (== the daily rows summed per month)."""
    stats, groups = _snapshot(pg)[:2]
    daily = _daily_snapshot(pg)
    assert daily == _daily_from_hourly(stats, groups)
    assert _daily_snapshot(pg, "monthly") == _daily_from_hourly(stats, groups, _month)
    if exp_stats is not None:
        assert daily[0] == _daily_from_hourly(exp_stats, {})[0]
    return daily


def _rebuild(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["rollups", "rebuild", *args])
    assert result.exit_code == 0, result.output
    return result.output


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(batch, min_size=1, max_size=5), since_hours=st.integers(0, 24 * 40))
def test_rollups_equal_a_direct_aggregate_and_rebuild_reproduces_them(
    app, db, pg, settings, batches, since_hours
):
    pg.rollback()  # the previous example's snapshot left a transaction (and its locks) open
    truncate(app)
    acked: list[int] = []
    for offset, reports in batches:
        bodies = [_body(r) for r in reports]
        result = write_batch(
            pg,
            [RawReport(b, "application/json") for b in bodies],
            parse_options(settings),
            now=BASE + timedelta(hours=offset, minutes=offset % 60),
        )
        assert result.quarantined == 0
        for r, b in zip(reports, bodies, strict=True):
            if r["ack"]:
                acked.append(result.ids_by_report[json.loads(b)["id"]])
    if acked:
        # Through the trigger, like any acknowledgement; then un-acknowledge a few again.
        with pg.cursor() as cur:
            cur.execute(
                "UPDATE messages SET acknowledged_at = now(), acknowledged_by = 't' "
                "WHERE id = ANY(%s)",
                (acked,),
            )
            cur.execute(
                "UPDATE messages SET acknowledged_at = NULL WHERE id = ANY(%s)", (acked[::3],)
            )
        pg.commit()

    stats, groups, per_fp = _snapshot(pg)
    exp_stats, exp_groups, exp_fp = _expected(pg)
    assert stats == exp_stats
    assert {k: v[:5] for k, v in groups.items()} == exp_groups
    assert {k: v[:3] for k, v in per_fp.items()} == exp_fp
    # The triggers followed every batch and (un-)acknowledgement.
    daily = _assert_daily_consistent(pg, exp_stats)
    # Error counts per day from `messages` too.
    exp_daily_counts: dict = defaultdict(lambda: [0, 0])
    for (fp, bucket, mtype, instrument), (n, acked_n, *_) in exp_groups.items():
        c = exp_daily_counts[(fp, _day(bucket), mtype, instrument)]
        c[0], c[1] = c[0] + n, c[1] + acked_n
    assert {k: v[:2] for k, v in daily[1].items()} == {
        k: tuple(v) for k, v in exp_daily_counts.items()
    }

    _rebuild(app)
    pg.rollback()
    assert _snapshot(pg) == (stats, groups, per_fp)
    assert _assert_daily_consistent(pg) == daily

    # A partial rebuild replaces the hours from `since` on, with the same result.
    since = (BASE + timedelta(hours=since_hours)).isoformat()
    _rebuild(app, "--since", since)
    pg.rollback()
    assert _snapshot(pg) == (stats, groups, per_fp)
    assert _assert_daily_consistent(pg) == daily


def test_rebuild_repairs_damaged_rollups_and_restores_missing_groups(app, db, pg, settings):
    bodies = [
        _body(
            {
                "type": "user-sync",
                "instrument": "BL06",
                "error": (ERRORS[2], 5),
                "second_error": True,
                "ms": 1200,
                "ack": False,
            }
        )
        for _ in range(3)
    ]
    write_batch(
        pg, [RawReport(b, "application/json") for b in bodies], parse_options(settings), now=BASE
    )
    before = _snapshot(pg)
    before_daily = _daily_snapshot(pg)
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE message_stats SET total = 99, processing_histogram = '{}', "
            "max_processing_ms = 3"
        )
        cur.execute("DELETE FROM error_groups")
        cur.execute("UPDATE error_group_stats SET count = 7, sample_error = 'x'")
    pg.commit()
    # Manual edits of the hourly rows reach the daily ones too (a lowered max included).
    damaged = _assert_daily_consistent(pg)
    assert damaged[0][next(iter(damaged[0]))][3] == 3
    output = _rebuild(app)
    assert "1 error groups added" in output
    pg.rollback()
    assert _snapshot(pg) == before
    assert _daily_snapshot(pg) == before_daily


def test_rebuild_refuses_a_bad_since_and_waits_for_no_one_when_locked(app, db, pg):
    result = app.test_cli_runner().invoke(args=["rollups", "rebuild", "--since", "last week"])
    assert result.exit_code != 0
    assert "since" in result.output
    from webapp.locks import LOCK_ROLLUP_REBUILD

    with pg.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_ROLLUP_REBUILD,))
    try:
        result = app.test_cli_runner().invoke(args=["rollups", "rebuild"])
        assert result.exit_code != 0
        assert "holds the lock" in result.output
    finally:
        with pg.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ROLLUP_REBUILD,))
        pg.commit()


@pytest.mark.parametrize("ms", [0, 1, 2, 7, 8, 999, 1000, 86_400_000, 2**31 - 1])
def test_histogram_bins_agree_with_postgres_width_bucket(pg, ms):
    with pg.cursor() as cur:
        cur.execute("SELECT width_bucket(%s, %s::int[])", (ms, list(histogram.EDGES_MS)))
        assert cur.fetchone()[0] == histogram.bin_of(ms)


def test_concurrent_batches_and_acknowledgements_keep_the_daily_rollups_exact(
    app, db, pg, settings
):
    """Writers committing batches of the same hours and days at once, and acknowledgements
    meanwhile: no count lost, no deadlock, daily rows equal to the hourly ones summed."""
    import random
    import threading

    import psycopg2

    from tests.conftest import admin_dsn

    dsn = admin_dsn(app.extensions["settings"].POSTGRES_DB)
    failures: list[BaseException] = []
    written: list[int] = []
    reports = [
        {"type": t, "instrument": i, "error": e, "second_error": False, "ms": ms, "ack": False}
        for t in TYPES
        for i in INSTRUMENTS
        for e, ms in ((None, 5), ((ERRORS[0], 1), 90_000), ((ERRORS[2], 2), None))
    ]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        conn = psycopg2.connect(dsn)
        try:
            for n in range(12):
                chosen = rng.sample(reports, 12)
                result = write_batch(
                    conn,
                    [RawReport(_body(r), "application/json") for r in chosen],
                    parse_options(settings),
                    # Two workers in the same hours of the same two days.
                    now=BASE + timedelta(hours=(n % 3) + 3 * (n % 2)),
                )
                written.extend(result.ids_by_report.values())
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            conn.close()

    def acknowledger() -> None:
        conn = psycopg2.connect(dsn)
        try:
            for _ in range(10):
                with conn.cursor() as cur:
                    cur.execute(
                        "UPDATE messages SET acknowledged_at = CASE WHEN acknowledged_at IS NULL "
                        "THEN now() END WHERE errored AND id % 3 = 0"
                    )
                conn.commit()
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2, 3)]
    threads.append(threading.Thread(target=acknowledger))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(written) == 3 * 12 * 12
    pg.rollback()
    exp_stats = _expected(pg)[0]
    assert _snapshot(pg)[0] == exp_stats
    _assert_daily_consistent(pg, exp_stats)
