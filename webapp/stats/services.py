"""Writes of the stats area: `rebuild_rollups` recomputes the rollups from `messages`.

Ingestion maintains the rollups (webapp.ingest.writer); acknowledgements are folded into
`error_group_stats.acknowledged` by the database trigger `messages_ack_rollup` (migration
`stats_rollups`), so the actions code has nothing to call. The daily rollups
(`message_stats_daily`, `error_group_stats_daily`) follow every change of the hourly ones through
triggers (migration `daily_rollups`), the rebuild's deletes and inserts included. The rebuild is
for repairs: after the migration on an existing database, after a retention drop (dropped
partitions leave their rollups, which keep the history of the statistics), or after manual edits
of `messages`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, INTEGER, TEXT
from sqlalchemy.engine import Connection

from ..ingest.fingerprint import fingerprint as compute_fingerprint
from ..ingest.fingerprint import first_error
from ..locks import LOCK_ROLLUP_REBUILD, try_xact_lock
from .histogram import EDGES_MS

logger = logging.getLogger(__name__)

#: The UTC hour of a timestamptz, identical to webapp.ingest.writer._hour.
HOUR = "(date_trunc('hour', {col} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


@dataclass
class RebuildResult:
    locked_out: bool = False
    since: datetime | None = None
    message_stats_rows: int = 0
    error_group_stats_rows: int = 0
    error_groups_added: int = 0
    error_groups_removed: int = 0


def hour_of(moment: datetime) -> datetime:
    """The rollup bucket of `moment` (naive = UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rebuild_rollups(conn: Connection, since: datetime | None = None) -> RebuildResult:
    """Recompute message_stats, error_group_stats and error_groups' counts from `messages`.

    Only the buckets from the hour of `since` on are replaced (all when None). Runs in the
    caller's transaction under the advisory lock LOCK_ROLLUP_REBUILD; the rollup tables are
    locked against writes for its duration, so a batch committing meanwhile is counted exactly
    once (either before the rebuild reads `messages`, or by its own upsert afterwards), and so
    is an acknowledgement (its trigger waits for the lock, then applies its delta to the rebuilt
    rows).

    Lock order (RELIABILITY.md, "Rollup rows"): the tables are locked first, in the order in
    which the ingestion writer takes their rows (message_stats, error_groups,
    error_group_stats). Every other writer of these tables holds a conflicting lock on the
    table while it holds any of their rows or day locks, so nothing the rebuild takes afterwards
    (rows, the daily rollups' day locks) can be held by anyone else.
    """
    result = RebuildResult(since=hour_of(since) if since else None)
    if not try_xact_lock(conn, LOCK_ROLLUP_REBUILD):
        result.locked_out = True
        return result
    conn.execute(
        text("LOCK TABLE message_stats, error_groups, error_group_stats IN EXCLUSIVE MODE")
    )
    lower = result.since or datetime(1, 1, 1, tzinfo=UTC)
    params = {"since": lower}
    conn.execute(text("DELETE FROM message_stats WHERE bucket >= :since"), params)
    conn.execute(text("DELETE FROM error_group_stats WHERE bucket >= :since"), params)

    hour = HOUR.format(col="received_at")
    result.message_stats_rows = conn.execute(
        text(
            f"""
            WITH totals AS (
                SELECT {hour} AS bucket, message_type, coalesce(instrument, '') AS instrument,
                       count(*) AS total,
                       count(*) FILTER (WHERE errored) AS errored,
                       coalesce(sum(processing_ms), 0) AS sum_ms,
                       greatest(coalesce(max(processing_ms), 0), 0) AS max_ms,
                       count(processing_ms) AS timed
                  FROM messages WHERE received_at >= :since
                 GROUP BY 1, 2, 3
            ), bins AS (
                SELECT {hour} AS bucket, message_type, coalesce(instrument, '') AS instrument,
                       width_bucket(processing_ms, :edges) AS bin, count(*) AS n
                  FROM messages WHERE received_at >= :since AND processing_ms IS NOT NULL
                 GROUP BY 1, 2, 3, 4
            ), widths AS (
                SELECT bucket, message_type, instrument, max(bin) AS top FROM bins
                 GROUP BY 1, 2, 3
            ), dense AS (
                SELECT w.bucket, w.message_type, w.instrument,
                       array_agg(coalesce(b.n, 0) ORDER BY g.bin) AS histogram
                  FROM widths w
                 CROSS JOIN LATERAL generate_series(0, w.top) AS g(bin)
                  LEFT JOIN bins b ON b.bucket = w.bucket AND b.message_type = w.message_type
                                  AND b.instrument = w.instrument AND b.bin = g.bin
                 GROUP BY 1, 2, 3
            )
            INSERT INTO message_stats (bucket, message_type, instrument, total, errored,
                                       sum_processing_ms, max_processing_ms, timed,
                                       processing_histogram)
            SELECT t.bucket, t.message_type, t.instrument, t.total, t.errored, t.sum_ms,
                   t.max_ms, t.timed, coalesce(d.histogram, '{{}}'::bigint[])
              FROM totals t
              LEFT JOIN dense d USING (bucket, message_type, instrument)
            """
        ).bindparams(bindparam("edges", type_=ARRAY(INTEGER))),
        {**params, "edges": list(EDGES_MS)},
    ).rowcount

    result.error_group_stats_rows = conn.execute(
        text(
            f"""
            INSERT INTO error_group_stats (fingerprint, bucket, message_type, instrument, count,
                                           acknowledged, first_seen_at, last_seen_at,
                                           sample_message_id, sample_error)
            SELECT error_fingerprint, {hour}, message_type, coalesce(instrument, ''),
                   count(*), count(*) FILTER (WHERE acknowledged_at IS NOT NULL),
                   min(received_at), max(received_at), min(id), ''
              FROM messages
             WHERE received_at >= :since AND error_fingerprint IS NOT NULL
             GROUP BY 1, 2, 3, 4
            """
        ),
        params,
    ).rowcount
    _fill_samples(conn, lower)
    added, removed = _refresh_error_groups(conn)
    result.error_groups_added, result.error_groups_removed = added, removed
    logger.info(
        "rollups rebuilt since %s: %d message_stats rows, %d error_group_stats rows, "
        "%d error groups added, %d removed",
        result.since,
        result.message_stats_rows,
        result.error_group_stats_rows,
        added,
        removed,
    )
    return result


def sample_text(message_type: str, error_message: object, fp: str) -> str:
    """The error text of `error_message` that produced fingerprint `fp`."""
    cause = _cause_for(message_type, error_message, fp)
    if cause is not None:
        return cause.text
    found = first_error(error_message)
    return found[1] if found else ""


def _fill_samples(conn: Connection, since: datetime) -> None:
    rows = conn.execute(
        text(
            "SELECT s.sample_message_id, s.fingerprint, m.message_type, m.error_message "
            "FROM error_group_stats s JOIN messages m ON m.id = s.sample_message_id "
            "WHERE s.bucket >= :since AND s.sample_error = '' "
            "AND m.received_at >= :since"
        ),
        {"since": since},
    ).all()
    updates = [
        {
            "id": r.sample_message_id,
            "text": sample_text(r.message_type, r.error_message, r.fingerprint),
        }
        for r in rows
    ]
    if updates:
        # One statement joined to the arrays: a per-row UPDATE would scan error_group_stats
        # once per sample (no index on sample_message_id), quadratic on a large history.
        conn.execute(
            text(
                "UPDATE error_group_stats s SET sample_error = u.text "
                "FROM unnest(:ids, :texts) AS u(id, text) "
                "WHERE s.sample_message_id = u.id AND s.bucket >= :since"
            ).bindparams(
                bindparam("ids", type_=ARRAY(BIGINT)), bindparam("texts", type_=ARRAY(TEXT))
            ),
            {
                "ids": [u["id"] for u in updates],
                "texts": [u["text"] for u in updates],
                "since": since,
            },
        )


def _refresh_error_groups(conn: Connection) -> tuple[int, int]:
    """error_groups' count and first/last seen from error_group_stats; add missing groups."""
    conn.execute(
        text(
            """
            UPDATE error_groups g
               SET count = s.count, first_seen_at = s.first_seen_at,
                   last_seen_at = s.last_seen_at
              FROM (SELECT fingerprint, sum(count) AS count, min(first_seen_at) AS first_seen_at,
                           max(last_seen_at) AS last_seen_at
                      FROM error_group_stats GROUP BY 1) s
             WHERE g.fingerprint = s.fingerprint
            """
        )
    )
    removed = conn.execute(
        text(
            "DELETE FROM error_groups g WHERE NOT EXISTS "
            "(SELECT 1 FROM error_group_stats s WHERE s.fingerprint = g.fingerprint)"
        )
    ).rowcount
    missing = conn.execute(
        text(
            """
            SELECT s.fingerprint, s.count, s.first_seen_at, s.last_seen_at, m.id,
                   m.message_type, m.error_message
              FROM (SELECT fingerprint, sum(count) AS count, min(first_seen_at) AS first_seen_at,
                           max(last_seen_at) AS last_seen_at, min(sample_message_id) AS sample_id
                      FROM error_group_stats GROUP BY 1) s
              JOIN messages m ON m.id = s.sample_id
             WHERE NOT EXISTS (SELECT 1 FROM error_groups g WHERE g.fingerprint = s.fingerprint)
            """
        )
    ).all()
    added = 0
    for row in missing:
        cause = _cause_for(row.message_type, row.error_message, row.fingerprint)
        if cause is None:
            logger.warning(
                "cannot describe error group %s from message %s", row.fingerprint, row.id
            )
            continue
        conn.execute(
            text(
                "INSERT INTO error_groups (fingerprint, message_type, callback, exception_class, "
                "normalized_text, first_seen_at, last_seen_at, count, sample_message_id, "
                "sample_error) VALUES (:fp, :type, :callback, :exc, :normalized, :first, :last, "
                ":count, :sample_id, :sample)"
            ),
            {
                "fp": row.fingerprint,
                "type": row.message_type,
                "callback": cause.callback,
                "exc": cause.exception_class,
                "normalized": cause.normalized_text,
                "first": row.first_seen_at,
                "last": row.last_seen_at,
                "count": row.count,
                "sample_id": row.id,
                "sample": cause.text,
            },
        )
        added += 1
    return added, removed


def _cause_for(message_type: str, error_message: object, fp: str):
    """The cause with fingerprint `fp` among the errors of a stored message.

    The stored jsonb does not keep the producer's key order, so "the first error" is found again
    by its fingerprint rather than by position.
    """
    if isinstance(error_message, dict):
        for callback, error in error_message.items():
            cause = compute_fingerprint(message_type, {callback: error})
            if cause is not None and cause.fingerprint == fp:
                return cause
    return compute_fingerprint(message_type, error_message)
