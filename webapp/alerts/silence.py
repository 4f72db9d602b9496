"""Silence detection: how long a message type is usually quiet, learned from the hourly rollups.

PACER's most dangerous failure is invisible: a consumer that dies sends no reports. A silence
rule therefore compares, per message type (optionally type × instrument), the time since its
last report with the type's *usual gap*, learned like this:

1. Samples come from `message_stats` (hourly rollups, never `messages`) over the last
   `ALERT_SILENCE_LEARN_DAYS` days (default 28):
   - every non-empty hour gives one sample, its mean interval `60 / reports` minutes;
   - every run of empty hours between two non-empty ones gives one sample, the minutes from the
     start of the earlier non-empty hour to the start of the later one (a quiet night of 8 empty
     hours is a 540-minute gap).
2. Samples are split into two bands of PACER_TIMEZONE local time, by the hour where they start:
   *working hours* (Monday–Friday 07:00–19:00) and *quiet hours* (nights and weekends). The band
   of the current time is used when it has at least `MIN_BAND_SAMPLES` (12) samples, otherwise
   all; an empty run belongs to the band of its first empty hour (a night gap to the night).
3. The usual gap M is the `ALERT_SILENCE_PERCENTILE`-th percentile (default 95) of those samples,
   and the rule fires when the silence exceeds `max(ALERT_SILENCE_FLOOR_MINUTES, M)`.
4. A rule's `threshold` (minutes) is a fixed override that replaces the learned value; a type with
   fewer than `MIN_SAMPLES` samples has nothing learned and is only watched with an override.

The silence itself is measured from the type's newest `received_at` (one index lookup on
`messages (message_type, received_at)` per type, bounded to the learning window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Message, MessageStat

#: Fewer samples than this (type × band) and the type has no learned gap.
MIN_SAMPLES = 12
#: A band with fewer samples than this falls back to every sample of the type.
MIN_BAND_SAMPLES = 12
WORKING, QUIET = "working hours", "nights and weekends"


def band_of(moment: datetime, tz: tzinfo) -> str:
    """Working hours (Mon–Fri 07–19 local) or quiet hours (nights and weekends)."""
    local = moment.astimezone(tz)
    if local.weekday() < 5 and 7 <= local.hour < 19:
        return WORKING
    return QUIET


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def gap_samples(hours: list[tuple[datetime, int]]) -> list[tuple[datetime, float]]:
    """(start, minutes) samples of the rule above from ordered (bucket, reports) hours."""
    samples: list[tuple[datetime, float]] = []
    previous: datetime | None = None
    for bucket, total in hours:
        if total <= 0:
            continue
        if previous is not None and bucket - previous > timedelta(hours=1):
            # Banded by its first empty hour: a night gap belongs to the night.
            samples.append(
                (previous + timedelta(hours=1), (bucket - previous).total_seconds() / 60)
            )
        samples.append((bucket, 60 / total))
        previous = bucket
    return samples


@dataclass(frozen=True)
class UsualGap:
    """What was learned for one type (and instrument): the gap in minutes, from which band."""

    minutes: float | None
    band: str
    samples: int


def learn_usual_gap(
    hours: list[tuple[datetime, int]], now: datetime, tz: tzinfo, pct: float
) -> UsualGap:
    """The usual gap (minutes) for the current band, from ordered hourly (bucket, reports)."""
    samples = gap_samples(hours)
    band = band_of(now, tz)
    in_band = [m for start, m in samples if band_of(start, tz) == band]
    chosen = in_band if len(in_band) >= MIN_BAND_SAMPLES else [m for _, m in samples]
    if len(chosen) < MIN_SAMPLES:
        return UsualGap(None, band, len(chosen))
    return UsualGap(percentile(chosen, pct), band, len(chosen))


def hourly_reports(
    session: Session,
    now: datetime,
    days: int,
    scope_clause,
    message_type: str | None = None,
    instrument: str | None = None,
) -> dict[str, list[tuple[datetime, int]]]:
    """{message type: ordered (bucket, reports)} of the learning window, within a scope."""
    stmt = (
        select(MessageStat.message_type, MessageStat.bucket, func.sum(MessageStat.total))
        .where(MessageStat.bucket >= now - timedelta(days=days), scope_clause)
        .group_by(MessageStat.message_type, MessageStat.bucket)
        .order_by(MessageStat.message_type, MessageStat.bucket)
    )
    if message_type:
        stmt = stmt.where(MessageStat.message_type == message_type)
    if instrument:
        stmt = stmt.where(MessageStat.instrument == instrument.lower())
    out: dict[str, list[tuple[datetime, int]]] = {}
    for mtype, bucket, total in session.execute(stmt):
        out.setdefault(mtype, []).append((bucket, int(total)))
    return out


def last_report_at(
    session: Session,
    message_type: str,
    since: datetime,
    scope_clause,
    instrument: str | None = None,
) -> datetime | None:
    """Newest received_at of a type (and instrument) since `since`, within a scope."""
    stmt = select(func.max(Message.received_at)).where(
        Message.message_type == message_type, Message.received_at >= since, scope_clause
    )
    if instrument:
        stmt = stmt.where(Message.instrument == instrument.lower())
    return session.execute(stmt).scalar()
