"""Reads of /stats, /errors and their APIs: aggregates over the rollups, never over `messages`.

Every query is built on one "source" (a subquery with the rollup's columns) restricted by the
user's scope and the filter:

- the rollups when the scope can be decided from their dimensions: everyone unrestricted, and
  groups whose rules name message types and/or the instrument (DESIGN §7's common case, e.g.
  "instrument ∈ {BL06}"). A range [since, until) reads the daily rollups (`message_stats_daily`,
  `error_group_stats_daily`) for the whole UTC days inside it and the hourly ones (`message_stats`,
  `error_group_stats`) for the partial days at its edges (`split_range`): the daily rows are exact
  sums of the hourly ones (kept by triggers, migration `daily_rollups`), so the numbers are those
  of the hourly rows, from ~24 times fewer rows. Hourly charts read the hourly rows only;
- otherwise (a group with a rule on another identifier, e.g. `investigation`, which the rollups do
  not carry) a **documented fallback**: the same columns aggregated from `messages` with the
  scope's WHERE clause, bounded by the filter's time range and its (received_at) indexes. The
  numbers are exact either way; only the cost differs. Adding every identifier as a rollup
  dimension would multiply the rollups by the number of investigations/datasets, which defeats
  them; rules on such identifiers are rare (they are mostly used for per-proposal access).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, INTEGER, aggregate_order_by

from models import Message
from models.stats import ErrorGroup, ErrorGroupStat, MessageStat
from models.stats_daily import ErrorGroupStatDaily, MessageStatDaily

from ..auth.scope import Scope
from ..extensions import db
from . import histogram
from .filters import EPOCH, StatsFilter

#: Identifiers the rollups carry as a dimension (besides the message type).
ROLLUP_IDENTIFIERS = frozenset({"instrument"})
MAX_GROUPS = 500


def answers_from_rollups(scope: Scope) -> bool:
    """True when the rollups' dimensions decide this scope exactly (no fallback needed)."""
    if scope.see_all or not scope.restricted:
        return True
    return all(key in ROLLUP_IDENTIFIERS for rule in scope.rules for key, _ in rule.identifiers)


def _utc_trunc(unit: str, column):
    """date_trunc in UTC whatever the session time zone."""
    return func.timezone("UTC", func.date_trunc(unit, func.timezone("UTC", column)))


def _message_where(scope: Scope, flt: StatsFilter) -> list:
    m = Message
    where = [m.received_at >= flt.since, m.received_at < flt.until, scope.clause(m)]
    if flt.types:
        where.append(m.message_type.in_(flt.types))
    if flt.instrument:
        where.append(m.instrument == flt.instrument)
    return where


def _rollup_where(model, scope: Scope, flt: StatsFilter, since: datetime, until: datetime) -> list:
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


def _parts(hourly, daily, flt: StatsFilter, hourly_only: bool = False):
    """(model, since, until) of each level a range reads."""
    return [
        (daily if is_daily else hourly, lo, hi)
        for is_daily, lo, hi in split_range(flt.since, flt.until, hourly_only)
    ]


def _union(selects: list):
    return selects[0] if len(selects) == 1 else union_all(*selects)


# ---- message statistics ---------------------------------------------------------------------------


def stats_source(
    scope: Scope, flt: StatsFilter, hourly_only: bool = False, with_histogram: bool = False
):
    """(bucket, message_type, instrument, total, errored, sum_ms, max_ms, timed) rows: daily
    rows for the whole days of the range, hourly ones for the rest (all hourly: `hourly_only`);
    plus `processing_histogram` when the rollups answer and `with_histogram`."""
    if answers_from_rollups(scope):
        stmt = _union(
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
                ).where(*_rollup_where(s, scope, flt, lo, hi))
                for s, lo, hi in _parts(MessageStat, MessageStatDaily, flt, hourly_only)
            ]
        )
    else:
        m = Message
        hour = _utc_trunc("hour", m.received_at)
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
            .where(*_message_where(scope, flt))
            .group_by(hour, m.message_type, func.coalesce(m.instrument, ""))
        )
    return stmt.subquery("src")


def histogram_counts(scope: Scope, flt: StatsFilter) -> list[int]:
    """Processing-time histogram (webapp.stats.histogram bins) of the filtered messages."""
    if answers_from_rollups(scope):
        src = stats_source(scope, flt, with_histogram=True)
        return _bin_counts(db.session.scalar(select(_bin_sums(src)).select_from(src)))
    else:
        m = Message
        edges = cast(literal(list(histogram.EDGES_MS), ARRAY(INTEGER)), ARRAY(INTEGER))
        bin_ = func.width_bucket(m.processing_ms, edges)
        stmt = (
            select(bin_, func.count())
            .where(*_message_where(scope, flt), m.processing_ms.is_not(None))
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
    src = stats_source(scope, flt, with_histogram=rollups)
    row = db.session.execute(
        select(
            func.coalesce(func.sum(src.c.total), 0),
            func.coalesce(func.sum(src.c.errored), 0),
            func.coalesce(func.sum(src.c.sum_ms), 0),
            func.coalesce(func.sum(src.c.timed), 0),
            func.max(src.c.max_ms).filter(src.c.timed > 0),
            # The histogram in the same pass over the rollups.
            *([_bin_sums(src)] if rollups else []),
        )
    ).one()
    total, errored, sum_ms, timed, max_ms = (int(v) if v is not None else None for v in row[:5])
    if not timed:
        counts = []
    elif rollups:
        counts = _bin_counts(row[5])
    else:
        counts = histogram_counts(scope, flt)
    return Summary(
        total=total,
        errored=errored,
        error_rate=(errored / total) if total else None,
        mean_ms=(sum_ms / timed) if timed else None,
        median_ms=histogram.percentile(counts, 0.5, max_ms) if timed else None,
        p95_ms=histogram.percentile(counts, 0.95, max_ms) if timed else None,
        max_ms=max_ms,
    )


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


def _first_bucket(scope: Scope, flt: StatsFilter, source, hourly) -> datetime | None:
    """The first hour with rows in the range: only an unbounded range ("all") needs it (to
    start its axis and pick its granularity). Through the daily rows when the rollups answer:
    their first day, then that day's first hour."""
    if flt.since > EPOCH:
        return None
    first = db.session.scalar(select(func.min(source(scope, flt).c.bucket)))
    if first is None or not answers_from_rollups(scope):
        return first
    day = replace(flt, since=max(flt.since, first), until=min(flt.until, first + timedelta(days=1)))
    where = _rollup_where(hourly, scope, day, day.since, day.until)
    if hourly is ErrorGroupStat and flt.fingerprint:
        where.append(hourly.fingerprint == flt.fingerprint)
    return db.session.scalar(select(func.min(hourly.bucket)).where(*where)) or first


def series(scope: Scope, flt: StatsFilter) -> dict[str, Any]:
    """Volume and error rate per message type over time, on a dense time axis."""
    return _series(scope, flt)[0]


def _series(scope: Scope, flt: StatsFilter) -> tuple[dict[str, Any], list]:
    """series() and its (step, message type, total, errored) rows."""
    first = _first_bucket(scope, flt, stats_source, MessageStat)
    unit = granularity(flt, first)
    src = stats_source(scope, flt, hourly_only=unit == "hour")
    t = _utc_trunc(unit, src.c.bucket)
    rows = db.session.execute(
        select(t, src.c.message_type, func.sum(src.c.total), func.sum(src.c.errored))
        .group_by(t, src.c.message_type)
        .order_by(t)
    ).all()
    axis = _axis(flt, first, unit)
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
    return out, rows


def heatmap(
    scope: Scope, flt: StatsFilter, series_rows: tuple[str, list] | None = None
) -> dict[str, Any]:
    """Error rate per message type and calendar month (UTC) of the range.

    `series_rows` (granularity, rows of _series) saves its query when their steps nest in
    months (hour, day, month; not week)."""
    if series_rows is not None and series_rows[0] in ("hour", "day", "month"):
        sums: dict[tuple[datetime, str], list[int]] = {}
        for when, message_type, total, errored in series_rows[1]:
            cell = sums.setdefault((_trunc_py(when, "month"), message_type), [0, 0])
            cell[0] += int(total)
            cell[1] += int(errored)
        rows = [(m, t, n, e) for (m, t), (n, e) in sums.items()]
    else:
        src = stats_source(scope, flt)
        month = _utc_trunc("month", src.c.bucket)
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


def message_types(scope: Scope, flt: StatsFilter) -> list[str]:
    """Message types seen in the range and scope (choices of the type filter)."""
    unfiltered = StatsFilter(since=flt.since, until=flt.until)
    src = stats_source(scope, unfiltered)
    return list(
        db.session.scalars(select(src.c.message_type).distinct().order_by(src.c.message_type))
    )


# ---- error groups ---------------------------------------------------------------------------------


def error_source(scope: Scope, flt: StatsFilter, hourly_only: bool = False):
    """(fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at,
    last_seen_at, sample_message_id, sample_error) rows: daily rows for the whole days of the
    range, hourly ones for the rest.

    Without `include_acknowledged`, error_groups() takes first/last seen and the sample from the
    rows with open errors only; a daily row then gives those of its open hours (`open_*`), so
    the result is the hourly rows' one.
    """
    if answers_from_rollups(scope):
        selects = []
        for s, lo, hi in _parts(ErrorGroupStat, ErrorGroupStatDaily, flt, hourly_only):
            if s is ErrorGroupStatDaily and not flt.include_acknowledged:
                seen = (
                    s.open_first_seen_at.label("first_seen_at"),
                    s.open_last_seen_at.label("last_seen_at"),
                    s.open_sample_message_id.label("sample_message_id"),
                    s.open_sample_error.label("sample_error"),
                )
            else:
                seen = (s.first_seen_at, s.last_seen_at, s.sample_message_id, s.sample_error)
            stmt = select(
                s.fingerprint,
                s.bucket,
                s.message_type,
                s.instrument,
                s.count,
                s.acknowledged,
                *seen,
            ).where(*_rollup_where(s, scope, flt, lo, hi))
            if flt.fingerprint:
                stmt = stmt.where(s.fingerprint == flt.fingerprint)
            selects.append(stmt)
        stmt = _union(selects)
    else:
        m = Message
        hour = _utc_trunc("hour", m.received_at)
        instrument = func.coalesce(m.instrument, "")
        stmt = (
            select(
                m.error_fingerprint.label("fingerprint"),
                hour.label("bucket"),
                m.message_type,
                instrument.label("instrument"),
                func.count().label("count"),
                func.count().filter(m.acknowledged_at.is_not(None)).label("acknowledged"),
                func.min(m.received_at).label("first_seen_at"),
                func.max(m.received_at).label("last_seen_at"),
                func.min(m.id).label("sample_message_id"),
                literal(None).label("sample_error"),
            )
            .where(*_message_where(scope, flt), m.error_fingerprint.is_not(None))
            .group_by(m.error_fingerprint, hour, m.message_type, instrument)
        )
        if flt.fingerprint:
            stmt = stmt.where(m.error_fingerprint == flt.fingerprint)
    return stmt.subquery("errsrc")


@dataclass
class GroupRow:
    #: What the group is: its error fingerprint, or for a scope without details its message
    #: type (counts by type and time only: a fingerprint is read from the error text).
    key: str
    fingerprint: str | None
    count: int
    total: int
    acknowledged: int
    first_seen_at: datetime
    last_seen_at: datetime
    message_types: list[str]
    instruments: list[str]
    callback: str | None
    exception_class: str | None
    normalized_text: str | None
    sample_message_id: int | None
    sample_error: str | None

    @property
    def unacknowledged(self) -> int:
        return self.total - self.acknowledged

    def list_args(self, base: dict[str, Any]) -> dict[str, Any]:
        """Message-list arguments of this group's errors (`base`: the page's filter)."""
        if self.fingerprint is not None:
            return {"fingerprint": self.fingerprint, **base}
        rest = {k: v for k, v in base.items() if k not in ("type", "status")}
        return {"type": self.key, "status": "errored", **rest}

    def as_json(self, scope: Scope) -> dict[str, Any]:
        """The group as `scope` may see it (Scope.visible: counts by type and time only
        without details)."""
        return scope.visible(
            {
                "fingerprint": self.fingerprint,
                "count": self.count,
                "total": self.total,
                "acknowledged": self.acknowledged,
                "unacknowledged": self.unacknowledged,
                "first_seen_at": self.first_seen_at.isoformat(),
                "last_seen_at": self.last_seen_at.isoformat(),
                "message_types": self.message_types,
                "callback": self.callback,
                "exception_class": self.exception_class,
                "sample_message_id": self.sample_message_id,
                "instruments": self.instruments,
                "normalized_text": self.normalized_text,
                "sample_error": self.sample_error,
            }
        )


def _group_key(scope: Scope, src):
    """What error groups are keyed by: the fingerprint, or the message type for a scope
    without details (a fingerprint is read from the error text)."""
    return src.c.fingerprint if scope.can_see("fingerprint") else src.c.message_type


def error_groups(scope: Scope, flt: StatsFilter, limit: int = 100) -> list[GroupRow]:
    """Error groups in scope and filter, most frequent first (acknowledged ones only when
    `flt.include_acknowledged`); per message type for a scope without details."""
    src = error_source(scope, flt)
    key = _group_key(scope, src)
    open_ = src.c.count > src.c.acknowledged
    if flt.include_acknowledged:
        counted, keep = src.c.count, true()
    else:
        counted, keep = src.c.count - src.c.acknowledged, open_
    count = func.sum(counted)
    sample = func.min(src.c.sample_message_id).filter(keep)
    # The text of that sample only: aggregating every row's (id, text) pair made the database
    # send, and Python decode, thousands of JSON values per group.
    sample_error = type_coerce(
        func.array_agg(aggregate_order_by(src.c.sample_error, src.c.sample_message_id)).filter(
            keep
        ),
        ARRAY(Text),
    )[1]
    grouped = (
        select(
            key.label("key"),
            count.label("count"),
            func.sum(src.c.count).label("total"),
            func.sum(src.c.acknowledged).label("acknowledged"),
            func.min(src.c.first_seen_at).filter(keep).label("first_seen_at"),
            func.max(src.c.last_seen_at).filter(keep).label("last_seen_at"),
            func.array_agg(src.c.message_type.distinct()).filter(keep).label("types"),
            func.array_agg(src.c.instrument.distinct()).filter(keep).label("instruments"),
            sample.label("sample_id"),
            sample_error.label("sample_error"),
        )
        .group_by(key)
        .having(count > 0)
        .order_by(count.desc(), key)
        .limit(max(1, min(limit, MAX_GROUPS)))
        .subquery("g")
    )
    by_cause = scope.can_see("fingerprint")
    g = ErrorGroup
    if by_cause:
        stmt = select(grouped, g.callback, g.exception_class, g.normalized_text).outerjoin(
            g, g.fingerprint == grouped.c.key
        )
    else:
        nothing = literal(None)
        stmt = select(
            grouped,
            nothing.label("callback"),
            nothing.label("exception_class"),
            nothing.label("normalized_text"),
        )
    rows = db.session.execute(stmt.order_by(grouped.c.count.desc(), grouped.c.key)).all()
    # Without details a row carries nothing read from identifiers or error texts at all (not
    # only hidden by as_json or the template).
    details = scope.can_see_details
    out = []
    for r in rows:
        out.append(
            GroupRow(
                key=r.key,
                fingerprint=r.key if by_cause else None,
                count=int(r.count),
                total=int(r.total),
                acknowledged=int(r.acknowledged),
                first_seen_at=r.first_seen_at,
                last_seen_at=r.last_seen_at,
                message_types=sorted(r.types or []),
                instruments=sorted(i for i in (r.instruments or []) if i) if details else [],
                callback=r.callback,
                exception_class=r.exception_class,
                normalized_text=r.normalized_text,
                sample_message_id=int(r.sample_id) if details else None,
                sample_error=r.sample_error if details else None,
            )
        )
    if by_cause and not answers_from_rollups(scope):
        _fill_fallback_samples(out)
    return out


def _fill_fallback_samples(groups: list[GroupRow]) -> None:
    """The fallback source has no stored sample text: read the sample messages (by id)."""
    from .services import sample_text

    ids = [g.sample_message_id for g in groups]
    if not ids:
        return
    m = Message
    rows = {
        r.id: r
        for r in db.session.execute(
            select(m.id, m.message_type, m.error_message).where(m.id.in_(ids))
        )
    }
    for group in groups:
        row = rows.get(group.sample_message_id)
        if row is not None:
            group.sample_error = sample_text(row.message_type, row.error_message, group.fingerprint)


def group_series(scope: Scope, flt: StatsFilter, keys: list[str]) -> dict[str, Any]:
    """Per error group (GroupRow.key), its counts over the range (sparklines of /errors)."""
    if not keys:
        return {"granularity": None, "buckets": [], "groups": {}}
    first = _first_bucket(scope, flt, error_source, ErrorGroupStat)
    unit = granularity(flt, first)
    src = error_source(scope, flt, hourly_only=unit == "hour")
    key = _group_key(scope, src)
    t = _utc_trunc(unit, src.c.bucket)
    counted = src.c.count if flt.include_acknowledged else src.c.count - src.c.acknowledged
    rows = db.session.execute(
        select(t, key, func.sum(counted)).where(key.in_(keys)).group_by(t, key)
    ).all()
    axis = _axis(flt, first, unit)
    index = {m: i for i, m in enumerate(axis)}
    groups = {k: [0] * len(axis) for k in keys}
    for when, fp, n in rows:
        i = index.get(when.astimezone(UTC))
        if i is not None:
            groups[fp][i] = int(n)
    return {"granularity": unit, "buckets": [m.isoformat() for m in axis], "groups": groups}


def _axis(flt: StatsFilter, first: datetime | None, unit: str) -> list[datetime]:
    start = flt.since if flt.since > EPOCH or first is None else first
    axis: list[datetime] = []
    moment = _trunc_py(start, unit)
    while moment < flt.until and len(axis) < 5000:
        axis.append(moment)
        moment = _step(moment, unit)
    return axis


def stats_report(scope: Scope, flt: StatsFilter, top: int = 10) -> dict[str, Any]:
    """Everything /stats shows (and /api/v1/stats returns) for a scope and filter.

    Its top error groups count acknowledged errors too, like its error tiles: /stats shows what
    failed; /errors is where open causes are worked on.
    """
    groups = error_groups(scope, replace(flt, include_acknowledged=True), limit=top)
    series_, series_rows = _series(scope, flt)
    return {
        "filter": flt.as_json(),
        "source": "rollups" if answers_from_rollups(scope) else "messages",
        "summary": summary(scope, flt).as_json(),
        "series": series_,
        "heatmap": heatmap(scope, flt, (series_["granularity"], series_rows)),
        "top_error_groups": [g.as_json(scope) for g in groups],
    }
