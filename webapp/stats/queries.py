"""Reads of /stats, /errors and their APIs: aggregates over the rollups, never over `messages`.

Every query is built on one "source" (a subquery with the rollup's columns) restricted by the
user's scope and the filter:

- the rollups when the scope can be decided from their dimensions: everyone unrestricted, and
  groups whose rules name message types and/or the instrument (DESIGN §7's common case, e.g.
  "instrument ∈ {BL06}"). A range [since, until) reads the daily rollups (`message_stats_daily`,
  `error_group_stats_daily`) for the whole UTC days inside it and the hourly ones (`message_stats`,
  `error_group_stats`) for the partial days at its edges (`split_range`): the daily rows are exact
  sums of the hourly ones (kept by triggers, migration `daily_rollups`), so the numbers are those
  of the hourly rows, from ~24 times fewer rows. Reads that do not group by days or weeks (tiles,
  histogram, error groups, monthly series and heatmap) take the whole UTC months of the range
  from the monthly rollups (`split_levels`; triggers on the daily tables, migration
  `monthly_rollups`). The tiles' sums may also read a partial edge day or month as the whole one
  minus the hours or days outside the range, when that reads fewer rows (`signed_levels`; their
  maximum over the parts above). Hourly charts read the hourly rows only;
- otherwise (a group with a rule on another identifier, e.g. `investigation`, which the rollups do
  not carry) a **documented fallback**: the same columns aggregated from `messages` with the
  scope's WHERE clause, bounded by the filter's time range and its (received_at) indexes. The
  numbers are exact either way; only the cost differs. Adding every identifier as a rollup
  dimension would multiply the rollups by the number of investigations/datasets, which defeats
  them; rules on such identifiers are rare (they are mostly used for per-proposal access).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, INTEGER

from models import Message
from models.stats import ErrorGroupStat, MessageStat
from models.stats_daily import (
    ErrorGroupStatDaily,
    ErrorGroupStatMonthly,
    MessageStatDaily,
    MessageStatMonthly,
)

from ..auth.scope import Scope
from ..extensions import db
from ..planner import local_settings
from . import histogram
from .filters import EPOCH, ROLLUP_IDENTIFIERS, StatsFilter

MAX_GROUPS = 500


def answers_from_rollups(scope: Scope) -> bool:
    """True when the rollups' dimensions decide this scope exactly (no fallback needed)."""
    if scope.see_all or not scope.restricted:
        return True
    return all(key in ROLLUP_IDENTIFIERS for rule in scope.rules for key, _ in rule.identifiers)


@contextmanager
def serial_plans(scope: Scope) -> Iterator[None]:
    """Statements inside are planned without parallel workers when the rollups answer for
    `scope` (`local_settings`).

    The statistics' reads are a few thousand rollup rows each (tiles, 30-day series, error
    groups), but at 5,000,000 messages their indexes pass the planner's parallel thresholds:
    a Gather of two workers whose start-up (~8 ms on the 2-core bench machine, more when it is
    busy) costs more than the ~4 ms of work, and made /api/v1/stats (30 days) 1.6x slower at
    5,000,000 rows than at 1,000,000 (bench/README.md). Results are the same either way. The
    fallback over `messages` (answers_from_rollups false) may read many more rows: left to the
    planner."""
    if not answers_from_rollups(scope):
        yield
        return
    with local_settings(max_parallel_workers_per_gather=0):
        yield


def utc_trunc(unit: str, column):
    """date_trunc in UTC whatever the session time zone."""
    return func.timezone("UTC", func.date_trunc(unit, func.timezone("UTC", column)))


#: A Monday, 00:00 UTC: the origin of utc_week's 7-day bins.
_WEEK_ORIGIN = literal_column("TIMESTAMPTZ '2000-01-03 00:00:00+00'")


def utc_week(column):
    """The UTC week (Monday 00:00 UTC) of a timestamptz: utc_trunc("week", column), with one
    function call per row instead of three (date_bin floors times before its origin too)."""
    return func.date_bin(literal_column("INTERVAL '7 days'"), column, _WEEK_ORIGIN)


def message_where(scope: Scope, flt: StatsFilter) -> list:
    m = Message
    where = [m.received_at >= flt.since, m.received_at < flt.until, scope.clause(m)]
    if flt.types:
        where.append(m.message_type.in_(flt.types))
    if flt.instrument:
        where.append(m.instrument == flt.instrument)
    return where


def rollup_where(model, scope: Scope, flt: StatsFilter, since: datetime, until: datetime) -> list:
    where = [model.bucket >= since, model.bucket < until, scope.clause(model)]
    if flt.types:
        where.append(model.message_type.in_(flt.types))
    if flt.instrument:
        where.append(model.instrument == flt.instrument)
    return where


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def split_range(
    since: datetime, until: datetime, hourly_only: bool = False
) -> list[tuple[bool, datetime, datetime]]:
    """[since, until) as (daily?, start, end) parts: the whole UTC days inside it (daily rows)
    and the partial days at its edges (hourly rows)."""
    first_day = _floor_day(since)
    if first_day < since:
        first_day += timedelta(days=1)
    last_day = _floor_day(until)
    if hourly_only or first_day >= last_day:
        return [(False, since, until)]
    parts = [(True, first_day, last_day)]
    if since < first_day:
        parts.insert(0, (False, since, first_day))
    if last_day < until:
        parts.append((False, last_day, until))
    return parts


def _next_month(moment: datetime) -> datetime:
    return (moment.replace(day=1) + timedelta(days=32)).replace(day=1)


def split_levels(
    since: datetime, until: datetime, hourly_only: bool = False, whole_months: bool = False
) -> list[tuple[str, datetime, datetime]]:
    """split_range with its whole days split again: with `whole_months`, the whole UTC months
    inside them read from the monthly rollups ("month"), the days around them from the daily
    ones ("day"), the edge hours from the hourly ones ("hour"). Callers that group rows by a
    step months do not nest in (days, weeks) leave `whole_months` off."""
    levels: list[tuple[str, datetime, datetime]] = []
    for is_daily, lo, hi in split_range(since, until, hourly_only):
        if not is_daily:
            levels.append(("hour", lo, hi))
            continue
        first_month = lo.replace(day=1)
        if first_month < lo:
            first_month = _next_month(first_month)
        last_month = hi.replace(day=1)
        if not whole_months or first_month >= last_month:
            levels.append(("day", lo, hi))
            continue
        if lo < first_month:
            levels.append(("day", lo, first_month))
        levels.append(("month", first_month, last_month))
        if last_month < hi:
            levels.append(("day", last_month, hi))
    return levels


def _month_len(month: datetime) -> int:
    return (_next_month(month) - month).days


def signed_levels(since: datetime, until: datetime) -> list[tuple[int, str, datetime, datetime]]:
    """[since, until) as signed (sign, level, start, end) parts whose signed sum is the sum over
    [since, until), for sums only (totals, errors, processing time, histogram bins; not max):
    a partial day at an edge is read as its whole day minus the hours outside the range when
    that reads fewer buckets (13 hours or more: the day row minus at most 11 hour rows), a
    partial month as its whole month minus the days outside the range likewise. Each bucket
    of any level has about as many rows (one per message type and instrument seen in it), so
    at most ~12 hour and ~15 day buckets per edge are read, whatever the time of day and
    month: the 30-day tiles read ~5 times fewer rows than split_levels' days and edge hours.
    Exact because every statement sees the daily and monthly rows equal to the sums of the
    rows below them (the rollup triggers keep them so in the writing transaction)."""
    if not any(is_daily for is_daily, _, _ in split_range(since, until)):
        # No whole day (within a day, or across one midnight): hours, as split_range reads it.
        return [(1, "hour", since, until)]
    out: list[tuple[int, str, datetime, datetime]] = []
    first_day, last_day = _floor_day(since), _floor_day(until)
    if first_day < since:
        first_day += timedelta(days=1)
    # Edge hours: directly, or the day minus the hours outside.
    if since < first_day:
        hours = (first_day - since) // timedelta(hours=1)
        if 1 + (24 - hours) < hours:
            first_day -= timedelta(days=1)
            out.append((-1, "hour", first_day, since))
        else:
            out.append((1, "hour", since, first_day))
    if last_day < until:
        hours = (until - last_day) // timedelta(hours=1)
        if 1 + (24 - hours) < hours:
            out.append((-1, "hour", until, last_day + timedelta(days=1)))
            last_day += timedelta(days=1)
        else:
            out.append((1, "hour", last_day, until))
    if first_day == last_day:
        return _merged(out)
    # Days [first_day, last_day): whole months from the monthly rows; partial months as days,
    # or as the month minus the days outside.
    lo, hi = first_day, last_day
    month = lo.replace(day=1)
    while month < hi:
        end = _next_month(month)
        a, b = max(lo, month), min(hi, end)
        days = (b - a).days
        if days == _month_len(month):
            out.append((1, "month", month, end))
        elif 1 + (_month_len(month) - days) < days:
            out.append((1, "month", month, end))
            if month < a:
                out.append((-1, "day", month, a))
            if b < end:
                out.append((-1, "day", b, end))
        else:
            out.append((1, "day", a, b))
        month = end
    return _merged(out)


def _merged(parts: list[tuple[int, str, datetime, datetime]]) -> list:
    """Adjacent parts of the same sign and level as one (one range condition each)."""
    out: list[tuple[int, str, datetime, datetime]] = []
    for sign, level, lo, hi in sorted(parts, key=lambda p: (-p[0], p[1], p[2])):
        if out and out[-1][:2] == (sign, level) and out[-1][3] == lo:
            out[-1] = (sign, level, out[-1][2], hi)
        else:
            out.append((sign, level, lo, hi))
    return out


#: The daily and monthly model of each hourly rollup model.
LEVELS = {
    MessageStat: {"day": MessageStatDaily, "month": MessageStatMonthly},
    ErrorGroupStat: {"day": ErrorGroupStatDaily, "month": ErrorGroupStatMonthly},
}


#: Each level's model, by hourly model.
_MODELS = {hourly: {"hour": hourly, **levels} for hourly, levels in LEVELS.items()}


def parts(hourly, daily, flt: StatsFilter, hourly_only: bool = False, whole_months: bool = False):
    """(model, since, until) of each level a range reads."""
    models = {"hour": hourly, **LEVELS[hourly]}
    assert models["day"] is daily  # noqa: S101
    return [
        (models[level], lo, hi)
        for level, lo, hi in split_levels(flt.since, flt.until, hourly_only, whole_months)
    ]


def union(selects: list):
    return selects[0] if len(selects) == 1 else union_all(*selects)


# ---- message statistics ---------------------------------------------------------------------------


def stats_source(
    scope: Scope,
    flt: StatsFilter,
    hourly_only: bool = False,
    with_histogram: bool = False,
    whole_months: bool = False,
    levels: list[tuple[str, datetime, datetime]] | None = None,
):
    """(bucket, message_type, instrument, total, errored, sum_ms, max_ms, timed) rows: daily
    rows for the whole days of the range (monthly ones for its whole months: `whole_months`),
    hourly ones for the rest (all hourly: `hourly_only`), or those of the given (level, start,
    end) `levels` (rollups only); plus `processing_histogram` when the rollups answer and
    `with_histogram`."""
    if answers_from_rollups(scope):
        stmt = union(
            [
                select(
                    s.bucket,
                    s.message_type,
                    s.instrument,
                    s.total,
                    s.errored,
                    s.sum_processing_ms.label("sum_ms"),
                    s.max_processing_ms.label("max_ms"),
                    s.timed,
                    *([s.processing_histogram] if with_histogram else []),
                ).where(*rollup_where(s, scope, flt, lo, hi))
                for s, lo, hi in (
                    parts(MessageStat, MessageStatDaily, flt, hourly_only, whole_months)
                    if levels is None
                    else [(_MODELS[MessageStat][level], lo, hi) for level, lo, hi in levels]
                )
            ]
        )
    else:
        m = Message
        hour = utc_trunc("hour", m.received_at)
        stmt = (
            select(
                hour.label("bucket"),
                m.message_type,
                func.coalesce(m.instrument, "").label("instrument"),
                func.count().label("total"),
                func.count().filter(m.errored).label("errored"),
                func.coalesce(func.sum(m.processing_ms), 0).label("sum_ms"),
                func.greatest(func.coalesce(func.max(m.processing_ms), 0), 0).label("max_ms"),
                func.count(m.processing_ms).label("timed"),
            )
            .where(*message_where(scope, flt))
            .group_by(hour, m.message_type, func.coalesce(m.instrument, ""))
        )
    return stmt.subquery("src")


def histogram_counts(scope: Scope, flt: StatsFilter) -> list[int]:
    """Processing-time histogram (webapp.stats.histogram bins) of the filtered messages."""
    if answers_from_rollups(scope):
        src = stats_source(scope, flt, with_histogram=True, whole_months=True)
        return _bin_counts(db.session.scalar(select(_bin_sums(src)).select_from(src)))
    else:
        m = Message
        edges = cast(literal(list(histogram.EDGES_MS), ARRAY(INTEGER)), ARRAY(INTEGER))
        bin_ = func.width_bucket(m.processing_ms, edges)
        stmt = (
            select(bin_, func.count())
            .where(*message_where(scope, flt), m.processing_ms.is_not(None))
            .group_by(bin_)
        )
        offset = 0
    counts = [0] * histogram.BINS
    for i, n in db.session.execute(stmt):
        index = int(i) - offset
        if 0 <= index < histogram.BINS:
            counts[index] += int(n or 0)
    return counts


#: Each histogram bin summed over stats_source's rows (alias `src`), as one array: a subscript
#: per bin reads each row once, ~3 times cheaper than unnesting every array and grouping by
#: position. Rows' bins are summed as integers (bigint sums, ~30 % cheaper than bigint inputs;
#: one bin of one day row would need 2^31 messages of a type and instrument to overflow, which
#: raises, never miscounts). Literal SQL: built once, where 108 sum() constructs cost ~20 ms of
#: Python (construction and cache key) per request.
_BIN_SUMS_SQL = (
    "ARRAY["
    + ", ".join(
        f"sum((src.processing_histogram[{i}])::integer)" for i in range(1, histogram.BINS + 1)
    )
    + "]"
)


def _bin_sums(src):
    """The bin sums of `src` (a stats_source(..., with_histogram=True) subquery)."""
    assert src.name == "src"  # noqa: S101 - _BIN_SUMS_SQL names it
    return literal_column(_BIN_SUMS_SQL, ARRAY(BigInteger))


def _bin_counts(sums) -> list[int]:
    return [int(n or 0) for n in (sums or [])]


@dataclass
class Summary:
    total: int
    errored: int
    error_rate: float | None
    mean_ms: float | None
    median_ms: float | None
    p95_ms: float | None
    max_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summary(scope: Scope, flt: StatsFilter) -> Summary:
    """Tiles: messages, errors, error rate, mean/median/p95/max processing time."""
    rollups = answers_from_rollups(scope)
    if rollups:
        total, errored, sum_ms, timed, max_ms, counts = _rollup_summary(scope, flt)
    else:
        src = stats_source(scope, flt)
        row = db.session.execute(
            select(
                func.coalesce(func.sum(src.c.total), 0),
                func.coalesce(func.sum(src.c.errored), 0),
                func.coalesce(func.sum(src.c.sum_ms), 0),
                func.coalesce(func.sum(src.c.timed), 0),
                func.max(src.c.max_ms).filter(src.c.timed > 0),
            )
        ).one()
        total, errored, sum_ms, timed, max_ms = (int(v) if v is not None else None for v in row)
        counts = histogram_counts(scope, flt) if timed else []
    if not timed:
        counts = []
    return Summary(
        total=total,
        errored=errored,
        error_rate=(errored / total) if total else None,
        mean_ms=(sum_ms / timed) if timed else None,
        median_ms=histogram.percentile(counts, 0.5, max_ms) if timed else None,
        p95_ms=histogram.percentile(counts, 0.95, max_ms) if timed else None,
        max_ms=max_ms,
    )


def _rollup_summary(scope: Scope, flt: StatsFilter) -> tuple:
    """(total, errored, sum_ms, timed, max_ms, histogram counts) from the rollups, in one
    statement (one snapshot): the sums over signed_levels' parts, added and subtracted, and
    the maximum over split_levels' parts (a maximum does not subtract; it reads no histogram,
    the costly part of a row)."""
    signed = signed_levels(flt.since, flt.until)
    natural = split_levels(flt.since, flt.until, whole_months=True)
    sums = []
    for sign in (1, -1):
        levels = [(level, lo, hi) for s, level, lo, hi in signed if s == sign]
        if not levels:
            continue
        src = stats_source(scope, flt, with_histogram=True, levels=levels)
        sums.append(
            select(
                func.coalesce(func.sum(src.c.total), 0).label("total"),
                func.coalesce(func.sum(src.c.errored), 0).label("errored"),
                func.coalesce(func.sum(src.c.sum_ms), 0).label("sum_ms"),
                func.coalesce(func.sum(src.c.timed), 0).label("timed"),
                _bin_sums(src).label("bins"),
            ).subquery("plus" if sign == 1 else "minus")
        )
    src = stats_source(scope, flt, levels=natural)
    top = select(func.max(src.c.max_ms).filter(src.c.timed > 0).label("max_ms")).subquery("top")
    stmt = select(*(c for part in sums for c in part.c), top.c.max_ms).select_from(top)
    for part in sums:
        stmt = stmt.join(part, literal(True))
    row = db.session.execute(stmt).one()
    values = [0, 0, 0, 0]
    counts = [0] * histogram.BINS
    for n, part in enumerate(sums):
        sign = 1 if part.name == "plus" else -1
        for i in range(4):
            values[i] += sign * int(row[5 * n + i])
        for i, count in enumerate(_bin_counts(row[5 * n + 4])):
            counts[i] += sign * count
    max_ms = row[-1]
    return (*values, int(max_ms) if max_ms is not None else None, counts)


def granularity(flt: StatsFilter, first: datetime | None) -> str:
    """Time step of the charts for the range (hour, day, week or month)."""
    start = max(flt.since, first) if first and flt.since == EPOCH else flt.since
    span = flt.until - start
    if span <= timedelta(days=3):
        return "hour"
    if span <= timedelta(days=120):
        return "day"
    if span <= timedelta(days=3 * 366):
        return "week"
    return "month"


def _step(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=1)
    if unit == "day":
        return moment + timedelta(days=1)
    if unit == "week":
        return moment + timedelta(weeks=1)
    return (moment.replace(day=1) + timedelta(days=32)).replace(day=1)


def _trunc_py(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "day":
        return moment
    if unit == "week":
        return moment - timedelta(days=moment.weekday())
    return moment.replace(day=1)


def first_bucket(scope: Scope, flt: StatsFilter, source, hourly) -> datetime | None:
    """The first hour with rows in the range: only an unbounded range ("all") needs it (to
    start its axis and pick its granularity). Through the daily rows when the rollups answer:
    their first day, then that day's first hour."""
    if flt.since > EPOCH:
        return None
    if answers_from_rollups(scope):
        # The least of each level's own min(bucket) (an index probe each), not the min over
        # the union of every row of the range (PostgreSQL does not push min() into UNION ALL).
        daily = {MessageStat: MessageStatDaily, ErrorGroupStat: ErrorGroupStatDaily}[hourly]
        mins = []
        for model, lo, hi in parts(hourly, daily, flt):
            where = rollup_where(model, scope, flt, lo, hi)
            if hourly is ErrorGroupStat and flt.fingerprint:
                where.append(model.fingerprint == flt.fingerprint)
            mins.append(select(func.min(model.bucket)).where(*where).scalar_subquery())
        first = db.session.scalar(select(func.least(*mins)))
    else:
        first = db.session.scalar(select(func.min(source(scope, flt).c.bucket)))
    if first is None or not answers_from_rollups(scope):
        return first
    day = replace(flt, since=max(flt.since, first), until=min(flt.until, first + timedelta(days=1)))
    where = rollup_where(hourly, scope, day, day.since, day.until)
    if hourly is ErrorGroupStat and flt.fingerprint:
        where.append(hourly.fingerprint == flt.fingerprint)
    return db.session.scalar(select(func.min(hourly.bucket)).where(*where)) or first


def series(scope: Scope, flt: StatsFilter) -> dict[str, Any]:
    """Volume and error rate per message type over time, on a dense time axis."""
    return _series(scope, flt)[0]


def _series(scope: Scope, flt: StatsFilter) -> tuple[dict[str, Any], tuple[str, list]]:
    """series() and its rows: (unit, [(step, message type, total, errored)]), summed per step
    by the database. Weeks are grouped with date_bin (one function call per row, where
    utc_trunc takes three) and returned as weeks: the heatmap then reads months itself (weeks
    do not nest in months), from the monthly rows, which is cheaper than returning the ~7 times
    more (day, type) rows of a long range to sum them here."""
    first = first_bucket(scope, flt, stats_source, MessageStat)
    unit = granularity(flt, first)
    src = stats_source(scope, flt, hourly_only=unit == "hour", whole_months=unit == "month")
    t = utc_week(src.c.bucket) if unit == "week" else utc_trunc(unit, src.c.bucket)
    rows = db.session.execute(
        select(t, src.c.message_type, func.sum(src.c.total), func.sum(src.c.errored))
        .group_by(t, src.c.message_type)
        .order_by(t)
    ).all()
    axis = time_axis(flt, first, unit)
    index = {m: i for i, m in enumerate(axis)}
    types: dict[str, dict[str, list]] = {}
    for when, message_type, total, errored in rows:
        i = index.get(when.astimezone(UTC))
        if i is None:
            continue
        entry = types.setdefault(
            message_type, {"total": [0] * len(axis), "errored": [0] * len(axis)}
        )
        entry["total"][i] = int(total)
        entry["errored"][i] = int(errored)
    out = {
        "granularity": unit,
        "buckets": [m.isoformat() for m in axis],
        "types": dict(sorted(types.items())),
    }
    return out, (unit, rows)


def heatmap(
    scope: Scope, flt: StatsFilter, series_rows: tuple[str, list] | None = None
) -> dict[str, Any]:
    """Error rate per message type and calendar month (UTC) of the range.

    `series_rows` (unit, rows of _series) saves its query when their steps nest in months
    (hour, day, month); weekly series' rows do not, so their heatmap reads the range's whole
    months from the monthly rows."""
    if series_rows is not None and series_rows[0] in ("hour", "day", "month"):
        sums: dict[tuple[datetime, str], list[int]] = {}
        for when, message_type, total, errored in series_rows[1]:
            cell = sums.setdefault((_trunc_py(when, "month"), message_type), [0, 0])
            cell[0] += int(total)
            cell[1] += int(errored)
        rows = [(m, t, n, e) for (m, t), (n, e) in sums.items()]
    else:
        src = stats_source(scope, flt, whole_months=True)
        month = utc_trunc("month", src.c.bucket)
        rows = db.session.execute(
            select(month, src.c.message_type, func.sum(src.c.total), func.sum(src.c.errored))
            .group_by(month, src.c.message_type)
            .order_by(month)
        ).all()
    months = sorted({r[0].astimezone(UTC) for r in rows})
    types = sorted({r[1] for r in rows})
    cells = {(r[0].astimezone(UTC), r[1]): (int(r[2]), int(r[3])) for r in rows}
    return {
        "months": [m.strftime("%Y-%m") for m in months],
        "types": types,
        "cells": [
            [
                {"total": cells[(m, t)][0], "errored": cells[(m, t)][1]}
                if (m, t) in cells
                else None
                for m in months
            ]
            for t in types
        ],
    }


#: Every message type of a rollup table, by a loose index scan of its (message_type, bucket)
#: index: one probe per distinct type.
_TABLE_TYPES = """
    WITH RECURSIVE t(message_type) AS (
        (SELECT message_type FROM {table} ORDER BY message_type LIMIT 1)
        UNION ALL
        SELECT (SELECT s.message_type FROM {table} s WHERE s.message_type > t.message_type
                ORDER BY s.message_type LIMIT 1)
        FROM t WHERE t.message_type IS NOT NULL
    )
    SELECT message_type FROM t WHERE message_type IS NOT NULL LIMIT 1000
"""


_IN_ORDER = text("SELECT t FROM unnest(CAST(:types AS text[])) AS t ORDER BY t")


def message_types(scope: Scope, flt: StatsFilter) -> list[str]:
    """Message types seen in the range and scope (choices of the type filter).

    From the rollups: each type of the tables (a loose index scan), kept when one of the range's
    levels has a row of it in the range and scope (an index probe per type and level), instead
    of reading every row of the range (all history: ~90,000 daily rows at 5,000,000 messages)."""
    unfiltered = StatsFilter(since=flt.since, until=flt.until)
    if answers_from_rollups(scope):
        stored = set()
        for table in (MessageStat.__tablename__, MessageStatDaily.__tablename__):
            stored |= set(db.session.scalars(text(_TABLE_TYPES.format(table=table))))
        if not stored:
            return []
        candidates = sorted(stored)
        seen = [
            or_(
                *(
                    exists().where(
                        model.message_type == candidate,
                        *rollup_where(model, scope, unfiltered, lo, hi),
                    )
                    for model, lo, hi in parts(MessageStat, MessageStatDaily, unfiltered)
                )
            )
            for candidate in candidates
        ]
        found = db.session.execute(select(*seen)).one()
        kept = [t for t, present in zip(candidates, found, strict=True) if present]
        # In the database's collation order, like the ORDER BY it replaces.
        return list(db.session.scalars(_IN_ORDER, {"types": kept}))
    src = stats_source(scope, unfiltered)
    return list(
        db.session.scalars(select(src.c.message_type).distinct().order_by(src.c.message_type))
    )


def time_axis(flt: StatsFilter, first: datetime | None, unit: str) -> list[datetime]:
    start = flt.since if flt.since > EPOCH or first is None else first
    axis: list[datetime] = []
    moment = _trunc_py(start, unit)
    while moment < flt.until and len(axis) < 5000:
        axis.append(moment)
        moment = _step(moment, unit)
    return axis


def stats_report(scope: Scope, flt: StatsFilter) -> dict[str, Any]:
    """/stats' tiles, series and heatmap for a scope and filter (its top error groups come from
    the errors area: webapp.errors_view.queries)."""
    series_, series_rows = _series(scope, flt)
    return {
        "filter": flt.as_json(),
        "source": "rollups" if answers_from_rollups(scope) else "messages",
        "summary": summary(scope, flt).as_json(),
        "series": series_,
        "heatmap": heatmap(scope, flt, series_rows),
    }
