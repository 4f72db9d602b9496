"""Rollups equal a direct aggregate over `messages`, and `flask rollups rebuild` reproduces them."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import report_body, truncate
from tests.messages.support import parse_options
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

    _rebuild(app)
    pg.rollback()
    assert _snapshot(pg) == (stats, groups, per_fp)

    # A partial rebuild replaces the hours from `since` on, with the same result.
    since = (BASE + timedelta(hours=since_hours)).isoformat()
    _rebuild(app, "--since", since)
    pg.rollback()
    assert _snapshot(pg) == (stats, groups, per_fp)


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
    with pg.cursor() as cur:
        cur.execute("UPDATE message_stats SET total = 99, processing_histogram = '{}'")
        cur.execute("DELETE FROM error_groups")
        cur.execute("UPDATE error_group_stats SET count = 7, sample_error = 'x'")
    pg.commit()
    output = _rebuild(app)
    assert "1 error groups added" in output
    pg.rollback()
    assert _snapshot(pg) == before


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
