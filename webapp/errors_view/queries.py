"""Reads of /errors and its API: error groups (errors grouped by cause) and their sparklines,
from the error rollups (`error_group_stats`, `error_group_stats_daily`, `error_groups`) in the
user's scope, or the documented fallback over `messages` (webapp.stats.queries explains when).

The rollup sources share their building blocks (range split, scope WHERE clauses, time axis)
with the statistics area: `webapp.stats.queries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, func, literal, select, true, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from models import Message
from models.stats import ErrorGroup, ErrorGroupStat
from models.stats_daily import ErrorGroupStatDaily, ErrorGroupStatMonthly

from ..auth.scope import Scope
from ..extensions import db
from ..stats.filters import StatsFilter
from ..stats.queries import (
    MAX_GROUPS,
    answers_from_rollups,
    first_bucket,
    granularity,
    message_where,
    parts,
    rollup_where,
    time_axis,
    union,
    utc_trunc,
)

# ---- error groups ---------------------------------------------------------------------------------


def error_source(
    scope: Scope, flt: StatsFilter, hourly_only: bool = False, whole_months: bool = False
):
    """(fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at,
    last_seen_at, sample_message_id, sample_error) rows: daily rows for the whole days of the
    range (monthly ones for its whole months: `whole_months`), hourly ones for the rest.

    Without `include_acknowledged`, error_groups() takes first/last seen and the sample from the
    rows with open errors only; a daily or monthly row then gives those of its open hours
    (`open_*`), so the result is the hourly rows' one.
    """
    if answers_from_rollups(scope):
        selects = []
        for s, lo, hi in parts(ErrorGroupStat, ErrorGroupStatDaily, flt, hourly_only, whole_months):
            if s in (ErrorGroupStatDaily, ErrorGroupStatMonthly) and not flt.include_acknowledged:
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
            ).where(*rollup_where(s, scope, flt, lo, hi))
            if flt.fingerprint:
                stmt = stmt.where(s.fingerprint == flt.fingerprint)
            selects.append(stmt)
        stmt = union(selects)
    else:
        m = Message
        hour = utc_trunc("hour", m.received_at)
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
            .where(*message_where(scope, flt), m.error_fingerprint.is_not(None))
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
    src = error_source(scope, flt, whole_months=True)
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
    details = scope.details
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
    from ..stats.services import sample_text

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
    first = first_bucket(scope, flt, error_source, ErrorGroupStat)
    unit = granularity(flt, first)
    src = error_source(scope, flt, hourly_only=unit == "hour", whole_months=unit == "month")
    key = _group_key(scope, src)
    t = utc_trunc(unit, src.c.bucket)
    counted = src.c.count if flt.include_acknowledged else src.c.count - src.c.acknowledged
    rows = db.session.execute(
        select(t, key, func.sum(counted)).where(key.in_(keys)).group_by(t, key)
    ).all()
    axis = time_axis(flt, first, unit)
    index = {m: i for i, m in enumerate(axis)}
    groups = {k: [0] * len(axis) for k in keys}
    for when, fp, n in rows:
        i = index.get(when.astimezone(UTC))
        if i is not None:
            groups[fp][i] = int(n)
    return {"granularity": unit, "buckets": [m.isoformat() for m in axis], "groups": groups}
