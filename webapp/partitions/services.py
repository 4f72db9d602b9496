"""Partition manager for the range-partitioned `messages` table.

Partitions are aligned to the calendar (6 months -> 1 Jan and 1 Jul, UTC) so runs in different
months never plan overlapping ranges. The manager keeps the current partition plus
MESSAGE_PARTITIONS_AHEAD future ones, moves rows that landed in the DEFAULT partition into the
partitions it creates, and drops partitions past MESSAGE_RETENTION_MONTHS. Every function works
on a SQLAlchemy connection inside the caller's transaction and holds an advisory lock.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.messages import DEFAULT_PARTITION, PARTITION_PREFIX

from ..locks import LOCK_PARTITIONS, try_xact_lock

logger = logging.getLogger(__name__)

PARENT = "messages"
_BOUND_RE = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class PartitionRange:
    """A planned calendar-aligned range [start, end)."""

    start: date
    end: date

    @property
    def name(self) -> str:
        return f"{PARTITION_PREFIX}{self.start:%Y_%m}"


@dataclass(frozen=True)
class PartitionInfo:
    """An existing partition of `messages`."""

    name: str
    start: datetime | None  # None for the DEFAULT partition
    end: datetime | None
    estimated_rows: int
    is_default: bool


def add_months(day: date, months: int) -> date:
    """First-of-month arithmetic: `day` must be the 1st; returns the 1st `months` later."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def aligned_range(moment: datetime | date, months: int) -> PartitionRange:
    """The calendar-aligned partition range of `months` months containing `moment` (UTC)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    first_month = ((moment.month - 1) // months) * months + 1
    start = date(moment.year, first_month, 1)
    return PartitionRange(start, add_months(start, months))


def planned_ranges(now: datetime, months: int, ahead: int) -> list[PartitionRange]:
    """The current partition range plus `ahead` following ones."""
    current = aligned_range(now, months)
    ranges = [current]
    for _ in range(ahead):
        last = ranges[-1]
        ranges.append(PartitionRange(last.end, add_months(last.end, months)))
    return ranges


def _ts(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def list_partitions(conn: Connection) -> list[PartitionInfo]:
    """Every partition of `messages` with its bounds and estimated row count, oldest first."""
    rows = conn.execute(
        text(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound,
                   GREATEST(c.reltuples, 0)::bigint AS estimate
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = :parent AND p.relnamespace = 'public'::regnamespace
            """
        ),
        {"parent": PARENT},
    ).all()
    result = []
    for name, bound, estimate in rows:
        match = _BOUND_RE.search(bound or "")
        if match:
            start = datetime.fromisoformat(match.group(1)).astimezone(UTC)
            end = datetime.fromisoformat(match.group(2)).astimezone(UTC)
            result.append(PartitionInfo(name, start, end, int(estimate), False))
        else:
            result.append(PartitionInfo(name, None, None, int(estimate), True))
    result.sort(key=lambda p: (p.is_default, p.start or datetime.max.replace(tzinfo=UTC)))
    return result


@dataclass
class MaintenanceResult:
    created: list[str]
    moved_rows: int
    skipped: list[str]
    locked_out: bool = False


def ensure_partitions(
    conn: Connection, *, months: int, ahead: int, now: datetime | None = None
) -> MaintenanceResult:
    """Create missing partitions (current + `ahead`), and the DEFAULT one; idempotent."""
    now = now or datetime.now(UTC)
    if not try_xact_lock(conn, LOCK_PARTITIONS):
        logger.info("partition maintenance already running elsewhere; skipped")
        return MaintenanceResult([], 0, [], locked_out=True)
    existing = list_partitions(conn)
    if not any(p.is_default for p in existing):
        conn.execute(text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT"))
        logger.info("created default partition %s", DEFAULT_PARTITION)
    bounded = [p for p in existing if not p.is_default]
    created, skipped, moved = [], [], 0
    for planned in planned_ranges(now, months, ahead):
        start = datetime.combine(planned.start, datetime.min.time(), UTC)
        end = datetime.combine(planned.end, datetime.min.time(), UTC)
        if any(p.start == start and p.end == end for p in bounded):
            continue
        overlapping = [p.name for p in bounded if p.start < end and start < p.end]
        if overlapping:
            # Happens only after MESSAGE_PARTITION_MONTHS changed: the existing partitions win.
            logger.warning(
                "partition %s [%s, %s) overlaps existing %s; not created",
                planned.name,
                planned.start,
                planned.end,
                ", ".join(overlapping),
            )
            skipped.append(planned.name)
            continue
        moved += _create_partition(conn, planned)
        created.append(planned.name)
    return MaintenanceResult(created, moved, skipped)


def _create_partition(conn: Connection, planned: PartitionRange) -> int:
    """Create one partition; rows of its range that sit in DEFAULT are moved into it."""
    lo, hi = _ts(planned.start), _ts(planned.end)
    in_default = conn.execute(
        text(
            f"SELECT count(*) FROM {DEFAULT_PARTITION} "
            "WHERE received_at >= CAST(:lo AS timestamptz) AND received_at < CAST(:hi AS timestamptz)"
        ),
        {"lo": lo, "hi": hi},
    ).scalar_one()
    bound = f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
    if not in_default:
        conn.execute(text(f"CREATE TABLE {planned.name} PARTITION OF {PARENT} {bound}"))
        logger.info("created partition %s [%s, %s)", planned.name, planned.start, planned.end)
        return 0
    # Postgres refuses a new partition whose range has rows in DEFAULT: detach default, create,
    # move the rows, re-attach; all in the caller's transaction.
    conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {DEFAULT_PARTITION}"))
    conn.execute(text(f"CREATE TABLE {planned.name} PARTITION OF {PARENT} {bound}"))
    moved = conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            "WHERE received_at >= CAST(:lo AS timestamptz) AND received_at < CAST(:hi AS timestamptz) "
            f"RETURNING *) INSERT INTO {PARENT} SELECT * FROM moved"
        ),
        {"lo": lo, "hi": hi},
    ).rowcount
    conn.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT"))
    logger.warning(
        "created partition %s [%s, %s) and moved %d rows out of the default partition",
        planned.name,
        planned.start,
        planned.end,
        moved,
    )
    return moved


def expired_partitions(
    conn: Connection, *, retention_months: int | None, now: datetime | None = None
) -> list[PartitionInfo]:
    """Partitions whose whole range is older than the retention period (none if unset)."""
    if not retention_months:
        return []
    now = now or datetime.now(UTC)
    cutoff_day = add_months(date(now.year, now.month, 1), -retention_months)
    cutoff = datetime.combine(cutoff_day, datetime.min.time(), UTC)
    return [p for p in list_partitions(conn) if not p.is_default and p.end <= cutoff]


def drop_expired_partitions(
    conn: Connection,
    *,
    retention_months: int | None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[PartitionInfo]:
    """Drop (or, with dry_run, only list) the partitions past retention."""
    expired = expired_partitions(conn, retention_months=retention_months, now=now)
    if dry_run or not expired:
        return expired
    if not try_xact_lock(conn, LOCK_PARTITIONS):
        logger.info("partition maintenance already running elsewhere; drop skipped")
        return []
    for part in expired:
        conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {part.name}"))
        conn.execute(text(f"DROP TABLE {part.name}"))
        logger.warning("dropped expired partition %s [%s, %s)", part.name, part.start, part.end)
    return expired


def default_partition_rows(conn: Connection) -> int:
    """Rows in the DEFAULT partition (should be 0; /healthz reports otherwise)."""
    exists = conn.execute(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": DEFAULT_PARTITION}
    ).scalar_one()
    if not exists:
        return 0
    return conn.execute(
        text(f"SELECT count(*) FROM (SELECT 1 FROM {DEFAULT_PARTITION} LIMIT 100000) d")
    ).scalar_one()


def partitions_ahead(conn: Connection, now: datetime | None = None) -> int:
    """How many partitions start after the current one ends (contiguously)."""
    now = now or datetime.now(UTC)
    parts = [p for p in list_partitions(conn) if not p.is_default]
    current = next((p for p in parts if p.start <= now < p.end), None)
    if current is None:
        return -1
    count, edge = 0, current.end
    for p in parts:
        if p.start == edge:
            count += 1
            edge = p.end
    return count
