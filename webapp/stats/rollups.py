"""The rollups in one place: what an hourly row is, how a batch adds to it, how the rebuild
recomputes it and how the daily triggers fold it into days.

Three writers keep `message_stats` / `error_group_stats` / `error_groups` and their daily tables:

1. the ingestion writer (webapp.ingest.writer) adds each batch with `upsert_batch`;
2. `flask rollups rebuild` recomputes them from `messages` with `rebuild_rollups`;
3. the database's statement triggers follow every change of an hourly row into its day
   (`daily_trigger_functions`) and fold acknowledgements into `error_group_stats`
   (`ACK_FUNCTION`).

All three read their column lists (`MESSAGE_STATS_KEY`, `MESSAGE_STATS_MEASURES`, ...) and the
bucket expressions (`hour_sql`, `day_sql`, `hour_of`) from here, and the histogram bins from
webapp.stats.histogram. tests/stats/test_rollup_definitions.py checks that they agree: the column
lists are the tables' columns, the triggers installed in the database are the SQL this module
generates, and a batch written by the writer equals what the rebuild and a direct aggregate over
`messages` produce (tests/stats/test_rollups.py holds the property test of that).

Migrations are history. The trigger functions were created by the migrations `daily_rollups`
and `rollup_lock_order` from SQL assembled inside those files; they keep their own copy (an
applied revision must mean forever what it meant when it ran, whatever this module becomes), and
the test asserts that the SQL they generate equals the SQL generated here for the current schema.
When a rollup definition changes, change it here and add a migration that re-creates the trigger
functions from this module (`CREATE OR REPLACE FUNCTION` of `daily_trigger_functions()` and
`ACK_FUNCTION`, both replaceable in place); the test then compares the database with this module
instead of the old migration.

Dependencies point one way: webapp.ingest imports this module (and webapp.stats.fingerprint), and
nothing in webapp.stats imports webapp.ingest.

Lock order (RELIABILITY.md, "Rollup rows"): every writer takes the rollup rows in one order —
`message_stats` rows by (bucket, message_type, instrument), then `error_groups` by fingerprint,
then `error_group_stats` by (bucket, message_type, instrument, fingerprint), each table in ONE
statement (the daily triggers take their per-day advisory locks at the end of each statement; a
second statement taking more rows after them would break the order). The rebuild locks the three
tables EXCLUSIVE in that order first.

The monthly level (`monthly_trigger_functions`, migration `monthly_rollups`) is the daily one
built again from the same generators one level up (`Level`: daily tables -> monthly tables,
per UTC month): statement triggers on the daily tables, which only the daily triggers write, so
all three writers keep it exact through them. Its per-month advisory locks (namespaces
`MONTH_LOCK_NAMESPACES`, in month order) are taken inside the daily triggers' statements, i.e.
after the day locks of the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psycopg2.extras
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, INTEGER, TEXT
from sqlalchemy.engine import Connection

from ..locks import LOCK_ROLLUP_REBUILD, try_xact_lock
from .fingerprint import ErrorCause, first_error
from .fingerprint import fingerprint as compute_fingerprint
from .histogram import BINS, EDGES_MS, bin_of, trim

logger = logging.getLogger(__name__)

# ---- the shared definitions --------------------------------------------------------------------

#: message_stats (and message_stats_daily): the key, then the measures.
MESSAGE_STATS_KEY = ("bucket", "message_type", "instrument")
MESSAGE_STATS_MEASURES = (
    "total",
    "errored",
    "sum_processing_ms",
    "max_processing_ms",
    "timed",
    "processing_histogram",
)
#: How a measure of two rows of one key merges: "sum", "max" or "histogram" (element-wise sum).
MESSAGE_STATS_MERGE = {
    "total": "sum",
    "errored": "sum",
    "sum_processing_ms": "sum",
    "max_processing_ms": "max",
    "timed": "sum",
    "processing_histogram": "histogram",
}

#: error_group_stats (and error_group_stats_daily): fingerprint x hour x type x instrument.
ERROR_GROUP_STATS_KEY = ("fingerprint", "bucket", "message_type", "instrument")
ERROR_GROUP_STATS_MEASURES = (
    "count",
    "acknowledged",
    "first_seen_at",
    "last_seen_at",
    "sample_message_id",
    "sample_error",
)
#: The daily table's extra measures: the same over the hours with unacknowledged messages.
ERROR_GROUP_STATS_DAILY_OPEN = (
    "open_first_seen_at",
    "open_last_seen_at",
    "open_sample_message_id",
    "open_sample_error",
)

#: error_groups: one row per fingerprint (what the group is, its totals, its sample).
ERROR_GROUPS_COLUMNS = (
    "fingerprint",
    "message_type",
    "callback",
    "exception_class",
    "normalized_text",
    "count",
    "sample_message_id",
    "sample_error",
    "first_seen_at",
    "last_seen_at",
)


def hour_sql(column: str) -> str:
    """The UTC hour (timestamptz) of a timestamptz column, whatever the session time zone."""
    return f"(date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def day_sql(column: str) -> str:
    """The UTC day (timestamptz at 00:00 UTC) of a timestamptz, whatever the session time zone."""
    return f"(date_trunc('day', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def month_sql(column: str) -> str:
    """The UTC month (timestamptz at 00:00 UTC on its 1st) of a timestamptz, whatever the session
    time zone."""
    return f"(date_trunc('month', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def hour_of(moment: datetime) -> datetime:
    """The rollup bucket of `moment` (naive = UTC): Python's `hour_sql`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _cols(columns: Iterable[str]) -> str:
    return ", ".join(columns)


# ---- 1. ingestion: a batch's rows, upserted ------------------------------------------------------


class RolledUpReport(Protocol):
    """What a rollup needs of a stored report (webapp.ingest.report.ParsedReport has it)."""

    report_id: str
    message_type: str
    instrument: str | None
    errored: bool
    processing_ms: int | None
    error_cause: ErrorCause | None


def message_stats_rows(reports: Iterable[RolledUpReport], bucket: datetime) -> list[tuple]:
    """The `message_stats` rows (MESSAGE_STATS_KEY + MESSAGE_STATS_MEASURES) of reports received
    in one hour, in the lock order; the histogram as an array literal."""
    agg: dict[tuple[str, str], list] = {}
    for r in reports:
        key = (r.message_type, r.instrument or "")
        a = agg.get(key)
        if a is None:
            a = agg[key] = [0, 0, 0, 0, 0, [0] * BINS]
        a[0] += 1
        if r.errored:
            a[1] += 1
        ms = r.processing_ms
        if ms is not None:
            a[2] += ms
            if ms > a[3]:
                a[3] = ms
            a[4] += 1
            a[5][bin_of(ms)] += 1
    return [
        (bucket, t, i, *v[:5], "{" + ",".join(map(str, trim(v[5]))) + "}")
        for (t, i), v in sorted(agg.items())
    ]


def error_group_rows(
    reports: Iterable[RolledUpReport], ids: dict[str, int], received_at: datetime
) -> tuple[list[tuple], list[tuple]]:
    """The `error_groups` rows (ERROR_GROUPS_COLUMNS) and `error_group_stats` rows
    (ERROR_GROUP_STATS_KEY + ERROR_GROUP_STATS_MEASURES) of one batch, each in the lock order.
    The sample of a row is its smallest message id (what a rebuild picks)."""
    groups: dict[str, list] = {}
    scoped: dict[tuple[str, str, str], list] = {}
    for r in reports:
        cause = r.error_cause
        if cause is None:
            continue
        message_id = ids[r.report_id]
        key = (cause.fingerprint, r.message_type, r.instrument or "")
        row = scoped.get(key)
        if row is None:
            scoped[key] = [1, message_id, cause.text]
        else:
            row[0] += 1
            if message_id < row[1]:
                row[1], row[2] = message_id, cause.text
        if cause.fingerprint in groups:
            groups[cause.fingerprint][5] += 1
            continue
        groups[cause.fingerprint] = [
            cause.fingerprint,
            r.message_type,
            cause.callback,
            cause.exception_class,
            cause.normalized_text,
            1,
            message_id,
            cause.text,
        ]
    bucket = hour_of(received_at)
    group_rows = [(*g, received_at, received_at) for _, g in sorted(groups.items())]
    # (bucket, message_type, instrument, fingerprint): as the acknowledgement trigger locks them
    # (byte-wise there, code points here: the same order).
    stats_rows = [
        (fp, bucket, t, i, n, 0, received_at, received_at, sample_id, sample)
        for (fp, t, i), (n, sample_id, sample) in sorted(
            scoped.items(), key=lambda item: (item[0][1], item[0][2], item[0][0])
        )
    ]
    return group_rows, stats_rows


def _merge(table: str, column: str, rule: str) -> str:
    mine, theirs = f"{table}.{column}", f"EXCLUDED.{column}"
    if rule == "sum":
        return f"{column} = {mine} + {theirs}"
    if rule == "max":
        return f"{column} = GREATEST({mine}, {theirs})"
    if rule == "min":
        return f"{column} = LEAST({mine}, {theirs})"
    if rule == "histogram":
        # Element-wise sum; unnest pads the shorter array with NULLs.
        return (
            f"{column} = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest("
            f"{mine}, {theirs}) WITH ORDINALITY AS h(a, b, i) ORDER BY i)"
        )
    raise ValueError(rule)


#: The ingestion upserts, one statement per table (see the lock order above).
UPSERT_MESSAGE_STATS = (
    f"INSERT INTO message_stats ({_cols(MESSAGE_STATS_KEY + MESSAGE_STATS_MEASURES)}) VALUES %s "
    f"ON CONFLICT ({_cols(MESSAGE_STATS_KEY)}) DO UPDATE SET "
    + ", ".join(_merge("message_stats", c, MESSAGE_STATS_MERGE[c]) for c in MESSAGE_STATS_MEASURES)
)
UPSERT_ERROR_GROUPS = (
    f"INSERT INTO error_groups ({_cols(ERROR_GROUPS_COLUMNS)}) VALUES %s "
    "ON CONFLICT (fingerprint) DO UPDATE SET "
    # Concurrent workers can commit a batch with an earlier received_at after a later one.
    + ", ".join(
        _merge("error_groups", c, rule)
        for c, rule in (("count", "sum"), ("first_seen_at", "min"), ("last_seen_at", "max"))
    )
)
UPSERT_ERROR_GROUP_STATS = (
    f"INSERT INTO error_group_stats "
    f"({_cols(ERROR_GROUP_STATS_KEY + ERROR_GROUP_STATS_MEASURES)}) VALUES %s "
    f"ON CONFLICT ({_cols(ERROR_GROUP_STATS_KEY)}) DO UPDATE SET "
    + ", ".join(
        _merge("error_group_stats", c, rule)
        for c, rule in (("count", "sum"), ("first_seen_at", "min"), ("last_seen_at", "max"))
    )
    # The sample is the row's smallest message id, whatever the order batches commit in
    # (`acknowledged` is the acknowledgement trigger's alone).
    + ", sample_error = CASE WHEN EXCLUDED.sample_message_id < "
    "error_group_stats.sample_message_id THEN EXCLUDED.sample_error "
    "ELSE error_group_stats.sample_error END, "
    + _merge("error_group_stats", "sample_message_id", "min")
)


def upsert_batch(
    cur, reports: Sequence[RolledUpReport], ids: dict[str, int], received_at: datetime
) -> None:
    """Add the freshly stored `reports` (message ids in `ids`) to the hourly, daily and monthly
    rollups and the error groups, in the lock order.

    The batch folds its own aggregate into each level (`_fold_batch`): the daily and monthly
    triggers, told so by DIRECT_SETTING, return at once instead of recomputing the same deltas
    from their transition tables twice over (NEW - OLD of every hourly, then every daily row:
    ~14 µs of PostgreSQL CPU per report at batch 500)."""
    if not reports:
        return
    cur.execute(f"SELECT set_config('{DIRECT_SETTING}', 'on', true)")
    _fold_batch(cur, reports, ids, received_at)
    cur.execute(f"SELECT set_config('{DIRECT_SETTING}', 'off', true)")


def _lock_period(cur, lv: Level, bucket: datetime) -> str:
    """The statement taking `lv`'s advisory lock of the period holding `bucket` (what the
    level's triggers take, `_lock_days`), to run right before that level's upsert."""
    moment = cur.mogrify("%s::timestamptz", (bucket,)).decode()
    return f"SELECT pg_advisory_xact_lock({lv.namespace}, {lv.lock_id(moment)}); "


def _upsert_message_stats(table: str) -> str:
    return UPSERT_MESSAGE_STATS.replace("message_stats", table)


def _fold_batch(
    cur, reports: Sequence[RolledUpReport], ids: dict[str, int], received_at: datetime
) -> None:
    """The batch's rows of every level, each table in one statement, in the lock order of the
    triggers it stands in for: hourly rows, the day's lock, daily rows, the month's lock,
    monthly rows (message_stats, then error_groups, then error_group_stats).

    What the triggers would add is exactly this: the delta of an hourly row is the batch's own
    aggregate (ingestion only adds: counts grow, maxima and last seen rise, first seen and
    samples fall, so none of the triggers' recompute or drop branches can apply), and the
    first/last seen and samples they merge are the upserted row's (an hour with a new message
    is open: its open_* are its own)."""
    hour = hour_of(received_at)
    day = hour.replace(hour=0)
    month = day.replace(day=1)
    stats = message_stats_rows(reports, hour)
    # Each row's VALUES text after its bucket, rendered once for the three levels. The histogram
    # as an array literal: psycopg2 adapts a list element by element, which cost more than the
    # rest of the batch's rollup upsert. One statement per table (see the lock order).
    rest = [
        cur.mogrify("%s, %s, %s, %s, %s, %s, %s, %s::bigint[])", row[1:]).decode() for row in stats
    ]
    statements = []
    for lv, bucket in ((None, hour), (MS_DAILY, day), (MS_MONTHLY, month)):
        moment = cur.mogrify("(%s, ", (bucket,)).decode()
        values = ", ".join(moment + r for r in rest)
        upsert = UPSERT_MESSAGE_STATS if lv is None else _upsert_message_stats(lv.target)
        lock = "" if lv is None else _lock_period(cur, lv, bucket)
        statements.append(lock + upsert.replace("VALUES %s", "VALUES " + values, 1))
    # One round trip; the statements still run one after the other, in this order. No
    # parameters: the text is final (a % in it is a value's, not a placeholder).
    cur.execute("; ".join(statements))
    groups, group_stats = error_group_rows(reports, ids, received_at)
    if not groups:
        return
    psycopg2.extras.execute_values(cur, UPSERT_ERROR_GROUPS, groups, page_size=len(groups))
    # The hourly rows, then each level's rows read from the level below as this transaction
    # left them (it holds their locks): one round trip, one statement per table, in order.
    hourly = cur.mogrify(
        ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(group_stats)),
        [v for row in group_stats for v in row],
    ).decode()
    keys = cur.mogrify(
        "unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) AS k(fp, t, i, n)",
        [[r[c] for r in group_stats] for c in (0, 2, 3, 4)],
    ).decode()
    statements = [UPSERT_ERROR_GROUP_STATS.replace("VALUES %s", "VALUES " + hourly, 1)]
    for lv, bucket, source in ((EG_DAILY, day, hour), (EG_MONTHLY, month, day)):
        statements.append(
            _lock_period(cur, lv, bucket)
            + _fold_error_group_stats(lv, cur.mogrify("%s", (bucket,)).decode(), keys, source, cur)
        )
    cur.execute("; ".join(statements))


def _fold_error_group_stats(lv: Level, bucket: str, keys: str, source: datetime, cur) -> str:
    """The batch's change of `lv`'s rows: its count per key, and the first/last seen and
    samples of the level below's rows (open_*: the hourly row's own, the day's open ones)."""
    open_ = (
        "s.first_seen_at, s.last_seen_at, s.sample_message_id, s.sample_error"
        if lv is EG_DAILY
        else "s.open_first_seen_at, s.open_last_seen_at, s.open_sample_message_id, "
        "s.open_sample_error"
    )
    return (
        f"INSERT INTO {lv.target} AS d ({_EG_KEY}, {_EG_COLUMNS})\n"
        f"SELECT s.fingerprint, {bucket}, s.message_type, s.instrument, k.n, 0, "
        f"s.first_seen_at, s.last_seen_at, s.sample_message_id, s.sample_error, {open_}\n"
        f"FROM {keys} JOIN {lv.source} s ON s.fingerprint = k.fp AND s.message_type = k.t "
        f"AND s.instrument = k.i AND s.bucket = {cur.mogrify('%s', (source,)).decode()}\n"
        "ORDER BY 1, 2, 3, 4\n" + _EG_ON_CONFLICT
    )


# ---- 2. the rebuild ------------------------------------------------------------------------------


@dataclass
class RebuildResult:
    locked_out: bool = False
    since: datetime | None = None
    message_stats_rows: int = 0
    error_group_stats_rows: int = 0
    error_groups_added: int = 0
    error_groups_removed: int = 0


def _rebuild_message_stats_sql() -> str:
    hour = hour_sql("received_at")
    return f"""
            WITH totals AS (
                SELECT {hour} AS bucket, message_type, coalesce(instrument, '') AS instrument,
                       count(*) AS total,
                       count(*) FILTER (WHERE errored) AS errored,
                       coalesce(sum(processing_ms), 0) AS sum_processing_ms,
                       greatest(coalesce(max(processing_ms), 0), 0) AS max_processing_ms,
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
                       array_agg(coalesce(b.n, 0) ORDER BY g.bin) AS processing_histogram
                  FROM widths w
                 CROSS JOIN LATERAL generate_series(0, w.top) AS g(bin)
                  LEFT JOIN bins b ON b.bucket = w.bucket AND b.message_type = w.message_type
                                  AND b.instrument = w.instrument AND b.bin = g.bin
                 GROUP BY 1, 2, 3
            )
            INSERT INTO message_stats ({_cols(MESSAGE_STATS_KEY + MESSAGE_STATS_MEASURES)})
            SELECT {_cols("t." + c for c in MESSAGE_STATS_KEY + MESSAGE_STATS_MEASURES[:-1])},
                   coalesce(d.processing_histogram, '{{}}'::bigint[])
              FROM totals t
              LEFT JOIN dense d USING ({_cols(MESSAGE_STATS_KEY)})
            """


def _rebuild_error_group_stats_sql() -> str:
    return f"""
            INSERT INTO error_group_stats ({_cols(ERROR_GROUP_STATS_KEY + ERROR_GROUP_STATS_MEASURES)})
            SELECT error_fingerprint, {hour_sql("received_at")}, message_type,
                   coalesce(instrument, ''),
                   count(*), count(*) FILTER (WHERE acknowledged_at IS NOT NULL),
                   min(received_at), max(received_at), min(id), ''
              FROM messages
             WHERE received_at >= :since AND error_fingerprint IS NOT NULL
             GROUP BY 1, 2, 3, 4
            """


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

    result.message_stats_rows = conn.execute(
        text(_rebuild_message_stats_sql()).bindparams(bindparam("edges", type_=ARRAY(INTEGER))),
        {**params, "edges": list(EDGES_MS)},
    ).rowcount
    result.error_group_stats_rows = conn.execute(
        text(_rebuild_error_group_stats_sql()), params
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
        (r.sample_message_id, sample_text(r.message_type, r.error_message, r.fingerprint))
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
            {"ids": [u[0] for u in updates], "texts": [u[1] for u in updates], "since": since},
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
                f"INSERT INTO error_groups ({_cols(ERROR_GROUPS_COLUMNS)}) VALUES "
                + "("
                + ", ".join(f":{c}" for c in ERROR_GROUPS_COLUMNS)
                + ")"
            ),
            {
                "fingerprint": row.fingerprint,
                "message_type": row.message_type,
                "callback": cause.callback,
                "exception_class": cause.exception_class,
                "normalized_text": cause.normalized_text,
                "count": row.count,
                "sample_message_id": row.id,
                "sample_error": cause.text,
                "first_seen_at": row.first_seen_at,
                "last_seen_at": row.last_seen_at,
            },
        )
        added += 1
    return added, removed


def _cause_for(message_type: str, error_message: object, fp: str) -> ErrorCause | None:
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


# ---- 3. the database triggers --------------------------------------------------------------------
#
# The SQL below is what migrations `daily_rollups` and `rollup_lock_order` installed (their
# frozen copies must keep generating exactly it: tests/stats/test_rollup_definitions.py).

#: Advisory lock namespaces (two-int form: its key space is apart from the bigint locks of
#: webapp.locks): one lock per UTC day (days since 1970) of each daily table.
DAY_LOCK_NAMESPACES = {"message_stats": 7301, "error_group_stats": 7302}

#: The same for the monthly tables: one lock per UTC month (months since year 0) of each.
MONTH_LOCK_NAMESPACES = {"message_stats": 7303, "error_group_stats": 7304}


@dataclass(frozen=True)
class Level:
    """A trigger-kept level: `target` rows are `source` rows summed per period (the changes'
    `day` column is the period's start whatever the period)."""

    source: str  # the table whose statement triggers keep `target`
    target: str
    period: str  # "day" or "month"
    namespace: int  # advisory lock namespace of its periods

    def start(self, column: str) -> str:
        return day_sql(column) if self.period == "day" else month_sql(column)

    @property
    def end(self) -> str:
        """The end of the period starting at `k.day`."""
        if self.period == "day":
            return "k.day + interval '24 hours'"
        # Calendar arithmetic in UTC: timestamptz + '1 month' would follow the session time zone.
        return "((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"

    def lock_id(self, column: str) -> str:
        if self.period == "day":
            return f"(extract(epoch FROM {day_sql(column)}) / 86400)::integer"
        utc = f"{column} AT TIME ZONE 'UTC'"
        return f"(extract(year FROM {utc}) * 12 + extract(month FROM {utc}) - 1)::integer"

    @property
    def lock_var(self) -> str:
        return f"lock_{self.period}"


MS_DAILY = Level(
    "message_stats", "message_stats_daily", "day", DAY_LOCK_NAMESPACES["message_stats"]
)
EG_DAILY = Level(
    "error_group_stats", "error_group_stats_daily", "day", DAY_LOCK_NAMESPACES["error_group_stats"]
)
MS_MONTHLY = Level(
    "message_stats_daily",
    "message_stats_monthly",
    "month",
    MONTH_LOCK_NAMESPACES["message_stats"],
)
EG_MONTHLY = Level(
    "error_group_stats_daily",
    "error_group_stats_monthly",
    "month",
    MONTH_LOCK_NAMESPACES["error_group_stats"],
)

_MS_KEY = _cols(MESSAGE_STATS_KEY)
_MS_COLUMNS = _cols(MESSAGE_STATS_MEASURES)
_EG_KEY = _cols(ERROR_GROUP_STATS_KEY)
_EG_COLUMNS = _cols(ERROR_GROUP_STATS_MEASURES + ERROR_GROUP_STATS_DAILY_OPEN)


def _ms_changes(*sources: tuple[int, str], lv: Level = MS_DAILY) -> str:
    return " UNION ALL ".join(
        f"SELECT {sign} AS sign, {lv.start('bucket')} AS day, message_type, instrument, "
        f"{_MS_COLUMNS} FROM {table}"
        for sign, table in sources
    )


def _ms_recompute(keys: str, lv: Level = MS_DAILY) -> str:
    """The day rows of `keys` (day, message_type, instrument) recomputed from the hourly rows.

    LATERAL: one index range scan per key. Transition tables have no statistics, and a plain
    join let the planner merge-join the whole hourly table on (type, instrument)."""
    return f"""
    UPDATE {lv.target} d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM ({keys}) k
     CROSS JOIN LATERAL (
            SELECT sum(s.total) AS total, sum(s.errored) AS errored,
                   sum(s.sum_processing_ms) AS sum_processing_ms,
                   max(s.max_processing_ms) AS max_processing_ms, sum(s.timed) AS timed,
                   rollup_histogram_sum(s.processing_histogram) AS processing_histogram
              FROM {lv.source} s
             WHERE s.message_type = k.message_type AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < {lv.end}) r
     WHERE d.bucket = k.day AND d.message_type = k.message_type
       AND d.instrument = k.instrument AND r.total IS NOT NULL;
"""


def _ms_drop_empty(keys: str, lv: Level = MS_DAILY) -> str:
    return f"""
    DELETE FROM {lv.target} d
     USING ({keys}) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM {lv.source} s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < {lv.end});
"""


def _ms_apply_deltas(changes: str, lv: Level = MS_DAILY) -> str:
    return f"""
    INSERT INTO {lv.target} AS d ({_MS_KEY}, {_MS_COLUMNS})
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM ({changes}) c
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT ({_MS_KEY}) DO UPDATE SET
        total = d.total + EXCLUDED.total,
        errored = d.errored + EXCLUDED.errored,
        sum_processing_ms = d.sum_processing_ms + EXCLUDED.sum_processing_ms,
        max_processing_ms = GREATEST(d.max_processing_ms, EXCLUDED.max_processing_ms),
        timed = d.timed + EXCLUDED.timed,
        processing_histogram = rollup_histogram_trim(
            rollup_histogram_add(d.processing_histogram, EXCLUDED.processing_histogram, 1));
"""


def _lock_days(lv: Level, *tables: str) -> str:
    """Take the day locks of every day the statement touched, in day order (the monthly level:
    the month locks, in month order).

    ON CONFLICT DO UPDATE fires the INSERT and the UPDATE trigger of the same statement one after
    the other: each locking its own day rows in key order would still let two batches of
    different hours of a day take them crosswise (a deadlock). Only the holder of a day's lock
    writes that day's rows, so they are taken whole, and the later statements of the trigger see
    every batch that wrote the day before it (they committed before the lock was granted).
    """
    buckets = " UNION ALL ".join(f"SELECT bucket FROM {t}" for t in tables)
    return f"""
    FOR {lv.lock_var} IN
        SELECT DISTINCT {lv.lock_id("bucket")}
          FROM ({buckets}) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock({lv.namespace}, {lv.lock_var});
    END LOOP;
"""


#: The transaction-local setting with which the ingestion writer tells the daily and monthly
#: triggers that its statements' changes are already folded into every level (`upsert_batch`).
DIRECT_SETTING = "pacer.rollups_direct"

_SKIP_DIRECT = f"""
    IF current_setting('{DIRECT_SETTING}', true) = 'on' THEN
        RETURN NULL;
    END IF;
"""


def _function(name: str, body: str, lv: Level | None = None, *, direct: bool = True) -> str:
    """The trigger function `name`; `direct`: it returns at once inside the ingestion writer's
    own fold (migration `rollups_direct_ingest`; False: the functions installed before it)."""
    if lv is None:
        lv = EG_DAILY if name.startswith("error_group_stats") else MS_DAILY
    tables = {
        "insert": ("new_rows",),
        "update": ("new_rows", "old_rows"),
        "delete": ("old_rows",),
    }.get(name.rsplit("_", 1)[1])
    lock = _lock_days(lv, *tables) if tables else ""
    if tables and lv.period == "month":
        # The daily triggers run every statement whatever it changed (an ON CONFLICT upsert
        # fires both the INSERT and the UPDATE trigger, a DELETE of nothing its trigger): most
        # calls see empty transition tables, and planning the statements below for nothing was
        # most of the level's cost.
        empty = " AND ".join(f"NOT EXISTS (SELECT 1 FROM {t})" for t in tables)
        lock = f"""
    IF {empty} THEN
        RETURN NULL;
    END IF;
{lock}"""
    if tables and direct:
        lock = _SKIP_DIRECT + lock
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"DECLARE\n    {lv.lock_var} integer;\nBEGIN\n{lock}{body}\n    RETURN NULL;\nEND\n$$"
    )


def _message_stats_bodies(lv: Level = MS_DAILY) -> dict[str, str]:
    update = _ms_changes((1, "new_rows"), (-1, "old_rows"), lv=lv)
    day = lv.start("bucket")
    old_keys = f"SELECT DISTINCT {day} AS day, message_type, instrument FROM old_rows"
    return {
        f"{lv.target}_on_insert": _ms_apply_deltas(_ms_changes((1, "new_rows"), lv=lv), lv),
        f"{lv.target}_on_update": _ms_apply_deltas(update, lv)
        # Day keys an UPDATE moved every hourly row out of.
        + _ms_drop_empty(
            f"SELECT {day} AS day, message_type, instrument FROM old_rows "
            f"EXCEPT SELECT {day}, message_type, instrument FROM new_rows",
            lv,
        )
        # A lowered maximum (never from ingestion, whose upsert only raises it).
        + _ms_recompute(
            f"SELECT day, message_type, instrument FROM ({update}) c GROUP BY 1, 2, 3 "
            "HAVING max(max_processing_ms) FILTER (WHERE sign < 0) "
            "> coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), -1)",
            lv,
        ),
        # Drop the emptied day rows, recompute the others.
        f"{lv.target}_on_delete": _ms_drop_empty(old_keys, lv) + _ms_recompute(old_keys, lv),
        f"{lv.target}_on_truncate": f"    TRUNCATE {lv.target};",
    }


def _eg_changes(*sources: tuple[int, str], lv: Level = EG_DAILY) -> str:
    if lv.source == "error_group_stats":
        return " UNION ALL ".join(
            f"SELECT {sign} AS sign, fingerprint, {day_sql('bucket')} AS day, message_type, "
            f"instrument, {_cols(ERROR_GROUP_STATS_MEASURES)}, "
            f"count > acknowledged AS is_open FROM {table}"
            for sign, table in sources
        )
    # From daily rows: each as itself (is_open false), plus, when it has open hours, a row of its
    # open first/last seen and sample counting nothing (is_open true). The open values lie within
    # the row's own (first <= open first, open last <= last, sample id <= open sample id, the
    # same text for the same id), so the extra rows change no aggregate over all rows.
    start = lv.start("bucket")
    return " UNION ALL ".join(
        f"SELECT {sign} AS sign, fingerprint, {start} AS day, message_type, "
        f"instrument, {_cols(ERROR_GROUP_STATS_MEASURES)}, false AS is_open FROM {table} "
        f"UNION ALL SELECT {sign}, fingerprint, {start}, message_type, instrument, 0, 0, "
        f"{_cols(ERROR_GROUP_STATS_DAILY_OPEN)}, true FROM {table} "
        "WHERE open_sample_message_id IS NOT NULL"
        for sign, table in sources
    )


def _eg_aggregates(prefix: str, where: str) -> str:
    """count, acknowledged, first/last seen and sample, then the same over the open rows."""
    f = f"FILTER (WHERE {where})" if where else ""
    o = f"FILTER (WHERE {where + ' AND ' if where else ''}{prefix}count > {prefix}acknowledged)"
    first, last = f"{prefix}first_seen_at", f"{prefix}last_seen_at"
    sid, txt = f"{prefix}sample_message_id", f"{prefix}sample_error"
    return (
        f"min({first}) {f}, max({last}) {f}, min({sid}) {f}, "
        f"(array_agg({txt} ORDER BY {sid}) {f})[1], "
        f"min({first}) {o}, max({last}) {o}, min({sid}) {o}, "
        f"(array_agg({txt} ORDER BY {sid}) {o})[1]"
    )


def _eg_monthly_aggregates() -> str:
    """_eg_aggregates over daily rows: the open ones from their open_* columns."""
    return (
        "min(s.first_seen_at), max(s.last_seen_at), min(s.sample_message_id), "
        "(array_agg(s.sample_error ORDER BY s.sample_message_id))[1], "
        "min(s.open_first_seen_at), max(s.open_last_seen_at), min(s.open_sample_message_id), "
        "(array_agg(s.open_sample_error ORDER BY s.open_sample_message_id) "
        "FILTER (WHERE s.open_sample_message_id IS NOT NULL))[1]"
    )


def _eg_recompute(keys: str, lv: Level = EG_DAILY) -> str:
    """As _ms_recompute, for error_group_stats_daily (and _monthly)."""
    aggregates = _eg_aggregates("s.", "") if lv is EG_DAILY else _eg_monthly_aggregates()
    return f"""
    UPDATE {lv.target} d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM ({keys}) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), {aggregates}
              FROM {lv.source} s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < {lv.end}
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;
"""


def _eg_drop_empty(keys: str, lv: Level = EG_DAILY) -> str:
    return f"""
    DELETE FROM {lv.target} d
     USING ({keys}) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM {lv.source} s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < {lv.end});
"""


def _eg_apply_deltas(changes: str, lv: Level = EG_DAILY) -> str:
    # Rows only in OLD (a moved or deleted key) still need non-NULL first/last/sample: theirs,
    # harmless under LEAST/GREATEST, and the key is recomputed or dropped right after.
    return f"""
    INSERT INTO {lv.target} AS d ({_EG_KEY}, {_EG_COLUMNS})
    SELECT fingerprint, day, message_type, instrument,
           sum(sign * count), sum(sign * acknowledged),
           coalesce(min(first_seen_at) FILTER (WHERE sign > 0), min(first_seen_at)),
           coalesce(max(last_seen_at) FILTER (WHERE sign > 0), max(last_seen_at)),
           coalesce(min(sample_message_id) FILTER (WHERE sign > 0), min(sample_message_id)),
           coalesce((array_agg(sample_error ORDER BY sample_message_id)
                     FILTER (WHERE sign > 0))[1], ''),
           min(first_seen_at) FILTER (WHERE sign > 0 AND is_open),
           max(last_seen_at) FILTER (WHERE sign > 0 AND is_open),
           min(sample_message_id) FILTER (WHERE sign > 0 AND is_open),
           (array_agg(sample_error ORDER BY sample_message_id)
            FILTER (WHERE sign > 0 AND is_open))[1]
      FROM ({changes}) c
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
{_EG_ON_CONFLICT};
"""


#: How a change of an error_group_stats_daily (or _monthly) row merges into the row (`d`).
_EG_ON_CONFLICT = f"""    ON CONFLICT ({_EG_KEY}) DO UPDATE SET
        count = d.count + EXCLUDED.count,
        acknowledged = d.acknowledged + EXCLUDED.acknowledged,
        first_seen_at = LEAST(d.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = GREATEST(d.last_seen_at, EXCLUDED.last_seen_at),
        sample_error = CASE WHEN EXCLUDED.sample_message_id < d.sample_message_id
                            THEN EXCLUDED.sample_error ELSE d.sample_error END,
        sample_message_id = LEAST(d.sample_message_id, EXCLUDED.sample_message_id),
        open_first_seen_at = LEAST(d.open_first_seen_at, EXCLUDED.open_first_seen_at),
        open_last_seen_at = GREATEST(d.open_last_seen_at, EXCLUDED.open_last_seen_at),
        open_sample_error = CASE WHEN EXCLUDED.open_sample_message_id
                                      < coalesce(d.open_sample_message_id, 9223372036854775807)
                                 THEN EXCLUDED.open_sample_error ELSE d.open_sample_error END,
        open_sample_message_id = LEAST(d.open_sample_message_id,
                                       EXCLUDED.open_sample_message_id)"""


def _worse(old: str, new: str) -> str:
    """True when the rows of `new` could leave a day's first/last seen or sample lower than the
    merge keeps (the day then needs a recompute): `old` had rows and `new` does not dominate."""

    def agg(fn: str, column: str, where: str) -> str:
        return f"{fn}({column}) FILTER (WHERE {where})"

    def sample(where: str) -> str:
        return f"(array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE {where}))[1]"

    return (
        f"(bool_or({old}) AND (NOT coalesce(bool_or({new}), false)"
        f" OR {agg('min', 'first_seen_at', new)} > {agg('min', 'first_seen_at', old)}"
        f" OR {agg('max', 'last_seen_at', new)} < {agg('max', 'last_seen_at', old)}"
        f" OR {agg('min', 'sample_message_id', new)} > {agg('min', 'sample_message_id', old)}"
        f" OR ({agg('min', 'sample_message_id', new)} = {agg('min', 'sample_message_id', old)}"
        f" AND {sample(new)} IS DISTINCT FROM {sample(old)})))"
    )


def _error_group_stats_bodies(lv: Level = EG_DAILY) -> dict[str, str]:
    update = _eg_changes((1, "new_rows"), (-1, "old_rows"), lv=lv)
    day = lv.start("bucket")
    old_keys = f"SELECT DISTINCT fingerprint, {day} AS day, message_type, instrument FROM old_rows"
    return {
        f"{lv.target}_on_insert": _eg_apply_deltas(_eg_changes((1, "new_rows"), lv=lv), lv),
        f"{lv.target}_on_update": _eg_apply_deltas(update, lv)
        + _eg_drop_empty(
            f"SELECT fingerprint, {day} AS day, message_type, instrument FROM old_rows "
            f"EXCEPT SELECT fingerprint, {day}, message_type, instrument FROM new_rows",
            lv,
        )
        # Acknowledgements that close an hour, rebuilt sample texts, lowered last seen...
        + _eg_recompute(
            f"SELECT fingerprint, day, message_type, instrument FROM ({update}) c "
            f"GROUP BY 1, 2, 3, 4 HAVING {_worse('sign < 0', 'sign > 0')} OR "
            f"{_worse('sign < 0 AND is_open', 'sign > 0 AND is_open')}",
            lv,
        ),
        f"{lv.target}_on_delete": _eg_drop_empty(old_keys, lv) + _eg_recompute(old_keys, lv),
        f"{lv.target}_on_truncate": f"    TRUNCATE {lv.target};",
    }


def daily_trigger_functions(*, direct: bool = True) -> dict[str, str]:
    """name -> `CREATE FUNCTION` of each trigger function that folds the hourly rollups into the
    daily ones (`CREATE OR REPLACE FUNCTION` re-creates one in place). `direct=False`: as
    migrations `daily_rollups` / `monthly_rollups` installed them, before the ingestion writer
    folded its batches into every level itself."""
    bodies = {**_message_stats_bodies(), **_error_group_stats_bodies()}
    return {name: _function(name, body, direct=direct) for name, body in bodies.items()}


def monthly_trigger_functions(*, direct: bool = True) -> dict[str, str]:
    """The same for the monthly level: statement triggers on the DAILY tables fold every change
    of a day row into its UTC month, exactly as the daily triggers fold hours into days. They
    run inside the statements of the daily triggers, so their month locks come after the day
    locks (and after every row lock of the hourly statement): RELIABILITY.md's order."""
    functions = {}
    for lv, bodies in (
        (MS_MONTHLY, _message_stats_bodies(MS_MONTHLY)),
        (EG_MONTHLY, _error_group_stats_bodies(EG_MONTHLY)),
    ):
        functions.update(
            {name: _function(name, body, lv, direct=direct) for name, body in bodies.items()}
        )
    return functions


#: (hourly table, daily table, event, REFERENCING clause) of each daily trigger
#: (`{daily}_{event}` runs `{daily}_on_{event}()` after each statement).
DAILY_TRIGGERS = [
    (hourly, f"{hourly}_daily", event, referencing)
    for hourly in ("message_stats", "error_group_stats")
    for event, referencing in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("TRUNCATE", None),
    )
]


#: (daily table, monthly table, event, REFERENCING clause) of each monthly trigger.
MONTHLY_TRIGGERS = [
    (daily, monthly, event, referencing)
    for (_, daily, event, referencing), monthly in zip(
        DAILY_TRIGGERS,
        [lv.target for lv in (MS_MONTHLY, EG_MONTHLY) for _ in range(4)],
        strict=True,
    )
]


def _ack_delta_sql() -> str:
    return f"""SELECT n.error_fingerprint AS fingerprint,
                   {hour_sql("n.received_at")[1:-1]}
                       AS bucket,
                   n.message_type,
                   coalesce(n.instrument, '') AS instrument,
                   sum(CASE WHEN n.acknowledged_at IS NULL THEN -1 ELSE 1 END) AS delta
              FROM new_rows n
              JOIN old_rows o ON o.id = n.id AND o.received_at = n.received_at
             WHERE n.error_fingerprint IS NOT NULL
               AND (n.acknowledged_at IS NULL) <> (o.acknowledged_at IS NULL)
             GROUP BY 1, 2, 3, 4"""


#: The statement trigger `messages_ack_rollup` (AFTER UPDATE ON messages): folds (un-)acknowledge-
#: ments into `error_group_stats.acknowledged`, locking the rows in the lock order first.
ACK_FUNCTION = f"""
CREATE OR REPLACE FUNCTION error_group_stats_on_ack() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    buckets timestamptz[];
    types text[];
    instruments text[];
    fingerprints text[];
    deltas bigint[];
BEGIN
    -- Only rows whose acknowledged state flipped and that belong to an error group; the
    -- arrays are aligned (one pass of the same rows), their order does not matter.
    SELECT array_agg(d.bucket), array_agg(d.message_type), array_agg(d.instrument),
           array_agg(d.fingerprint), array_agg(d.delta)
      INTO buckets, types, instruments, fingerprints, deltas
      FROM (
            {_ack_delta_sql()}
           ) d
     WHERE d.delta <> 0;
    IF buckets IS NULL THEN
        RETURN NULL;
    END IF;

    -- Lock them in that order first (LockRows sits above the Sort): a batch upserting the
    -- same hour's rows in the same order waits for us, or we for it, never both.
    PERFORM 1
       FROM unnest(buckets, types, instruments, fingerprints)
            AS k(bucket, message_type, instrument, fingerprint)
       JOIN error_group_stats s
         ON s.fingerprint = k.fingerprint AND s.bucket = k.bucket
        AND s.message_type = k.message_type AND s.instrument = k.instrument
      ORDER BY s.bucket, s.message_type COLLATE "C", s.instrument COLLATE "C",
               s.fingerprint COLLATE "C"
        FOR UPDATE OF s;

    -- A new snapshot (this function is volatile): the rows as their last writer left them.
    UPDATE error_group_stats s
       SET acknowledged = s.acknowledged + k.delta
      FROM unnest(buckets, types, instruments, fingerprints, deltas)
           AS k(bucket, message_type, instrument, fingerprint, delta)
     WHERE s.fingerprint = k.fingerprint
       AND s.bucket = k.bucket
       AND s.message_type = k.message_type
       AND s.instrument = k.instrument;
    RETURN NULL;
END
$$
"""


def function_body(create_function: str) -> str:
    """The body between the `$$` of a CREATE FUNCTION (what pg_proc.prosrc holds)."""
    return create_function.split("$$", 2)[1]


def installed_function_bodies(cur, names: Iterable[str]) -> dict[str, str]:
    """pg_proc.prosrc of the named functions in the current database."""
    cur.execute("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(%s)", (list(names),))
    return dict(cur.fetchall())
