"""daily rollups: message_stats_daily and error_group_stats_daily, kept by triggers

/stats and /errors read whole UTC days from these and only the partial hours at a range's edges
from the hourly rollups (bench/README.md: a 30-day /stats read ~58,000 hourly rows).

The hourly tables stay the only ones written by the application: statement-level triggers on
`message_stats` and `error_group_stats` (AFTER INSERT / UPDATE / DELETE with transition tables,
AFTER TRUNCATE) fold every change of an hourly row into its day, so the ingestion writer, the
acknowledgement trigger `messages_ack_rollup` and `flask rollups rebuild` keep the daily level
exact without knowing about it.

- Every trigger first takes a transaction advisory lock per UTC day it touches (in day order),
  so one transaction at a time writes a day's rows: concurrent batches cannot deadlock on them
  (an ON CONFLICT upsert fires its INSERT and its UPDATE trigger one after the other; per-row
  locks taken in two rounds could cross), and the trigger's later statements, each with a
  fresh snapshot, see every batch that wrote the day before the lock was granted.
- Inserts and updates apply NEW - OLD per day row with INSERT ... ON CONFLICT DO UPDATE (counts,
  sums, histograms added). Maxima, first/last seen and samples are merged with GREATEST /
  LEAST, exact while a change can only raise them (every ingestion upsert).
- When a change could lower one of them (an UPDATE that lowers a maximum, an acknowledgement that
  closes an hour, a rebuild's sample text) or removes hourly rows (DELETE), the day row is
  recomputed from that day's hourly rows (or dropped when none is left). A batch still
  uncommitted then adds its own delta afterwards, on top of the recomputed row.

Histograms are added element-wise by `rollup_histogram_add` / the aggregate
`rollup_histogram_sum` (daily arrays without trailing zero bins).

Revision ID: daily_rollups
Revises: bench_indexes
Create Date: 2026-12-01 09:00:00.000000

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "daily_rollups"
down_revision = "bench_indexes"
branch_labels = None
depends_on = None


def _day(column: str) -> str:
    """The UTC day (timestamptz at 00:00 UTC) of a timestamptz, whatever the session time zone."""
    return f"(date_trunc('day', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


HISTOGRAM_FUNCTIONS = [
    """
CREATE FUNCTION rollup_histogram_add(a bigint[], b bigint[], factor bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    acc bigint[] := coalesce(a, '{}');
    m integer := cardinality(acc);
BEGIN
    -- a + factor * b, element-wise; the shorter array reads as zeros beyond its end.
    FOR i IN 1 .. coalesce(cardinality(b), 0) LOOP
        IF i <= m THEN
            acc[i] := coalesce(acc[i], 0) + factor * coalesce(b[i], 0);
        ELSE
            acc[i] := factor * coalesce(b[i], 0);
        END IF;
    END LOOP;
    RETURN acc;
END
$$
""",
    """
CREATE FUNCTION rollup_histogram_accum(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    acc bigint[] := coalesce(a, '{}');
    m integer := cardinality(acc);
BEGIN
    FOR i IN 1 .. coalesce(cardinality(b), 0) LOOP
        IF i <= m THEN
            acc[i] := coalesce(acc[i], 0) + coalesce(b[i], 0);
        ELSE
            acc[i] := coalesce(b[i], 0);
        END IF;
    END LOOP;
    RETURN acc;
END
$$
""",
    """
CREATE FUNCTION rollup_histogram_trim(a bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := coalesce(cardinality(a), 0);
BEGIN
    WHILE n > 0 AND coalesce(a[n], 0) = 0 LOOP
        n := n - 1;
    END LOOP;
    IF n = 0 THEN
        RETURN '{}';
    END IF;
    RETURN a[1:n];
END
$$
""",
    """
CREATE AGGREGATE rollup_histogram_sum(bigint[]) (
    SFUNC = rollup_histogram_accum, STYPE = bigint[], INITCOND = '{}',
    FINALFUNC = rollup_histogram_trim, COMBINEFUNC = rollup_histogram_accum, PARALLEL = SAFE
)
""",
]

# ---- message_stats -> message_stats_daily --------------------------------------------------------

MS_KEY = "bucket, message_type, instrument"
MS_COLUMNS = "total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram"


def _ms_changes(*sources: tuple[int, str]) -> str:
    return " UNION ALL ".join(
        f"SELECT {sign} AS sign, {_day('bucket')} AS day, message_type, instrument, {MS_COLUMNS} "
        f"FROM {table}"
        for sign, table in sources
    )


def _ms_recompute(keys: str) -> str:
    """The day rows of `keys` (day, message_type, instrument) recomputed from the hourly rows.

    LATERAL: one index range scan per key. Transition tables have no statistics, and a plain
    join let the planner merge-join the whole hourly table on (type, instrument)."""
    return f"""
    UPDATE message_stats_daily d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM ({keys}) k
     CROSS JOIN LATERAL (
            SELECT sum(s.total) AS total, sum(s.errored) AS errored,
                   sum(s.sum_processing_ms) AS sum_processing_ms,
                   max(s.max_processing_ms) AS max_processing_ms, sum(s.timed) AS timed,
                   rollup_histogram_sum(s.processing_histogram) AS processing_histogram
              FROM message_stats s
             WHERE s.message_type = k.message_type AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours') r
     WHERE d.bucket = k.day AND d.message_type = k.message_type
       AND d.instrument = k.instrument AND r.total IS NOT NULL;
"""


def _ms_drop_empty(keys: str) -> str:
    return f"""
    DELETE FROM message_stats_daily d
     USING ({keys}) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM message_stats s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');
"""


def _ms_apply_deltas(changes: str) -> str:
    return f"""
    INSERT INTO message_stats_daily AS d ({MS_KEY}, {MS_COLUMNS})
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM ({changes}) c
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT ({MS_KEY}) DO UPDATE SET
        total = d.total + EXCLUDED.total,
        errored = d.errored + EXCLUDED.errored,
        sum_processing_ms = d.sum_processing_ms + EXCLUDED.sum_processing_ms,
        max_processing_ms = GREATEST(d.max_processing_ms, EXCLUDED.max_processing_ms),
        timed = d.timed + EXCLUDED.timed,
        processing_histogram = rollup_histogram_trim(
            rollup_histogram_add(d.processing_histogram, EXCLUDED.processing_histogram, 1));
"""


#: Advisory lock namespaces (two-int form: its key space is apart from the bigint locks of
#: webapp.locks): one lock per UTC day (days since 1970) of each daily table.
LOCK_NAMESPACES = {"message_stats": 7301, "error_group_stats": 7302}


def _lock_days(hourly: str, *tables: str) -> str:
    """Take the day locks of every day the statement touched, in day order.

    ON CONFLICT DO UPDATE fires the INSERT and the UPDATE trigger of the same statement one after
    the other: each locking its own day rows in key order would still let two batches of
    different hours of a day take them crosswise (a deadlock). Only the holder of a day's lock
    writes that day's rows, so they are taken whole, and the later statements of the trigger see
    every batch that wrote the day before it (they committed before the lock was granted).
    """
    buckets = " UNION ALL ".join(f"SELECT bucket FROM {t}" for t in tables)
    return f"""
    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM {_day("bucket")}) / 86400)::integer
          FROM ({buckets}) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock({LOCK_NAMESPACES[hourly]}, lock_day);
    END LOOP;
"""


def _function(name: str, body: str) -> str:
    hourly = "error_group_stats" if name.startswith("error_group_stats") else "message_stats"
    tables = {
        "insert": ("new_rows",),
        "update": ("new_rows", "old_rows"),
        "delete": ("old_rows",),
    }.get(name.rsplit("_", 1)[1])
    lock = _lock_days(hourly, *tables) if tables else ""
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"DECLARE\n    lock_day integer;\nBEGIN\n{lock}{body}\n    RETURN NULL;\nEND\n$$"
    )


_MS_UPDATE = _ms_changes((1, "new_rows"), (-1, "old_rows"))
MS_FUNCTIONS = {
    "message_stats_daily_on_insert": _ms_apply_deltas(_ms_changes((1, "new_rows"))),
    "message_stats_daily_on_update": _ms_apply_deltas(_MS_UPDATE)
    # Day keys an UPDATE moved every hourly row out of.
    + _ms_drop_empty(
        f"SELECT {_day('bucket')} AS day, message_type, instrument FROM old_rows "
        f"EXCEPT SELECT {_day('bucket')}, message_type, instrument FROM new_rows"
    )
    # A lowered maximum (never from ingestion, whose upsert only raises it).
    + _ms_recompute(
        f"SELECT day, message_type, instrument FROM ({_MS_UPDATE}) c GROUP BY 1, 2, 3 "
        "HAVING max(max_processing_ms) FILTER (WHERE sign < 0) "
        "> coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), -1)"
    ),
    # Drop the emptied day rows, recompute the others.
    "message_stats_daily_on_delete": _ms_drop_empty(
        f"SELECT DISTINCT {_day('bucket')} AS day, message_type, instrument FROM old_rows"
    )
    + _ms_recompute(
        f"SELECT DISTINCT {_day('bucket')} AS day, message_type, instrument FROM old_rows"
    ),
    "message_stats_daily_on_truncate": "    TRUNCATE message_stats_daily;",
}

# ---- error_group_stats -> error_group_stats_daily ------------------------------------------------

EG_KEY = "fingerprint, bucket, message_type, instrument"
EG_COLUMNS = (
    "count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, "
    "open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error"
)


def _eg_changes(*sources: tuple[int, str]) -> str:
    return " UNION ALL ".join(
        f"SELECT {sign} AS sign, fingerprint, {_day('bucket')} AS day, message_type, instrument, "
        "count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, "
        f"count > acknowledged AS is_open FROM {table}"
        for sign, table in sources
    )


def _eg_aggregates(prefix: str, where: str) -> str:
    """count, acknowledged, first/last seen and sample, then the same over the open rows."""
    f = f"FILTER (WHERE {where})" if where else ""
    o = f"FILTER (WHERE {where + ' AND ' if where else ''}{prefix}count > {prefix}acknowledged)"
    first, last = f"{prefix}first_seen_at", f"{prefix}last_seen_at"
    sid, text = f"{prefix}sample_message_id", f"{prefix}sample_error"
    return (
        f"min({first}) {f}, max({last}) {f}, min({sid}) {f}, "
        f"(array_agg({text} ORDER BY {sid}) {f})[1], "
        f"min({first}) {o}, max({last}) {o}, min({sid}) {o}, "
        f"(array_agg({text} ORDER BY {sid}) {o})[1]"
    )


def _eg_recompute(keys: str) -> str:
    """As _ms_recompute, for error_group_stats_daily."""
    return f"""
    UPDATE error_group_stats_daily d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM ({keys}) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), {_eg_aggregates("s.", "")}
              FROM error_group_stats s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours'
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;
"""


def _eg_drop_empty(keys: str) -> str:
    return f"""
    DELETE FROM error_group_stats_daily d
     USING ({keys}) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM error_group_stats s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');
"""


def _eg_apply_deltas(changes: str) -> str:
    # Rows only in OLD (a moved or deleted key) still need non-NULL first/last/sample: theirs,
    # harmless under LEAST/GREATEST, and the key is recomputed or dropped right after.
    return f"""
    INSERT INTO error_group_stats_daily AS d ({EG_KEY}, {EG_COLUMNS})
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
    ON CONFLICT ({EG_KEY}) DO UPDATE SET
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
                                       EXCLUDED.open_sample_message_id);
"""


_EG_UPDATE = _eg_changes((1, "new_rows"), (-1, "old_rows"))
_OLD, _NEW = "sign < 0", "sign > 0"
_OLD_OPEN, _NEW_OPEN = "sign < 0 AND is_open", "sign > 0 AND is_open"


def _worse(old: str, new: str) -> str:
    """True when the rows of `new` could leave a day's first/last seen or sample lower than the
    merge keeps (the day then needs a recompute): `old` had rows and `new` does not dominate."""

    def agg(fn: str, column: str, where: str) -> str:
        return f"{fn}({column}) FILTER (WHERE {where})"

    def text(where: str) -> str:
        return f"(array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE {where}))[1]"

    return (
        f"(bool_or({old}) AND (NOT coalesce(bool_or({new}), false)"
        f" OR {agg('min', 'first_seen_at', new)} > {agg('min', 'first_seen_at', old)}"
        f" OR {agg('max', 'last_seen_at', new)} < {agg('max', 'last_seen_at', old)}"
        f" OR {agg('min', 'sample_message_id', new)} > {agg('min', 'sample_message_id', old)}"
        f" OR ({agg('min', 'sample_message_id', new)} = {agg('min', 'sample_message_id', old)}"
        f" AND {text(new)} IS DISTINCT FROM {text(old)})))"
    )


_EG_OLD_KEYS = (
    f"SELECT DISTINCT fingerprint, {_day('bucket')} AS day, message_type, instrument FROM old_rows"
)
EG_FUNCTIONS = {
    "error_group_stats_daily_on_insert": _eg_apply_deltas(_eg_changes((1, "new_rows"))),
    "error_group_stats_daily_on_update": _eg_apply_deltas(_EG_UPDATE)
    + _eg_drop_empty(
        f"SELECT fingerprint, {_day('bucket')} AS day, message_type, instrument FROM old_rows "
        f"EXCEPT SELECT fingerprint, {_day('bucket')}, message_type, instrument FROM new_rows"
    )
    # Acknowledgements that close an hour, rebuilt sample texts, lowered last seen...
    + _eg_recompute(
        f"SELECT fingerprint, day, message_type, instrument FROM ({_EG_UPDATE}) c "
        f"GROUP BY 1, 2, 3, 4 HAVING {_worse(_OLD, _NEW)} OR {_worse(_OLD_OPEN, _NEW_OPEN)}"
    ),
    "error_group_stats_daily_on_delete": _eg_drop_empty(_EG_OLD_KEYS) + _eg_recompute(_EG_OLD_KEYS),
    "error_group_stats_daily_on_truncate": "    TRUNCATE error_group_stats_daily;",
}

TRIGGERS = [
    ("message_stats", "message_stats_daily", "INSERT", "NEW TABLE AS new_rows"),
    (
        "message_stats",
        "message_stats_daily",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    ("message_stats", "message_stats_daily", "DELETE", "OLD TABLE AS old_rows"),
    ("message_stats", "message_stats_daily", "TRUNCATE", None),
    ("error_group_stats", "error_group_stats_daily", "INSERT", "NEW TABLE AS new_rows"),
    (
        "error_group_stats",
        "error_group_stats_daily",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    ("error_group_stats", "error_group_stats_daily", "DELETE", "OLD TABLE AS old_rows"),
    ("error_group_stats", "error_group_stats_daily", "TRUNCATE", None),
]

BACKFILL = [
    f"""
    INSERT INTO message_stats_daily ({MS_KEY}, {MS_COLUMNS})
    SELECT {_day("bucket")}, message_type, instrument, sum(total), sum(errored),
           sum(sum_processing_ms), max(max_processing_ms), sum(timed),
           rollup_histogram_sum(processing_histogram)
      FROM message_stats
     GROUP BY 1, 2, 3
    """,
    f"""
    INSERT INTO error_group_stats_daily ({EG_KEY}, {EG_COLUMNS})
    SELECT fingerprint, {_day("bucket")}, message_type, instrument, sum(count),
           sum(acknowledged), {_eg_aggregates("", "")}
      FROM error_group_stats
     GROUP BY 1, 2, 3, 4
    """,
]


def upgrade():
    op.create_table(
        "message_stats_daily",
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("errored", sa.BigInteger(), nullable=False),
        sa.Column("sum_processing_ms", sa.BigInteger(), nullable=False),
        sa.Column("max_processing_ms", sa.BigInteger(), nullable=False),
        sa.Column("timed", sa.BigInteger(), nullable=False),
        sa.Column(
            "processing_histogram",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "bucket", "message_type", "instrument", name="pk_message_stats_daily"
        ),
    )
    op.create_index(
        "ix_message_stats_daily_message_type_bucket",
        "message_stats_daily",
        ["message_type", "bucket"],
    )
    op.create_table(
        "error_group_stats_daily",
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("acknowledged", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_message_id", sa.BigInteger(), nullable=False),
        sa.Column("sample_error", sa.Text(), nullable=False),
        sa.Column("open_first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_sample_message_id", sa.BigInteger(), nullable=True),
        sa.Column("open_sample_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "fingerprint",
            "bucket",
            "message_type",
            "instrument",
            name="pk_error_group_stats_daily",
        ),
    )
    op.create_index("ix_error_group_stats_daily_bucket", "error_group_stats_daily", ["bucket"])
    op.create_index(
        "ix_error_group_stats_daily_message_type_bucket",
        "error_group_stats_daily",
        ["message_type", "bucket"],
    )
    for statement in HISTOGRAM_FUNCTIONS:
        op.execute(statement)
    for name, body in {**MS_FUNCTIONS, **EG_FUNCTIONS}.items():
        op.execute(_function(name, body))
    # No batch may commit between the backfill and the triggers (it would be missed).
    op.execute("LOCK TABLE message_stats, error_group_stats IN SHARE ROW EXCLUSIVE MODE")
    for statement in BACKFILL:
        op.execute(statement)
    for table, daily, event, referencing in TRIGGERS:
        level = "STATEMENT"
        op.execute(
            f"CREATE TRIGGER {daily}_{event.lower()} AFTER {event} ON {table} "
            + (f"REFERENCING {referencing} " if referencing else "")
            + f"FOR EACH {level} EXECUTE FUNCTION {daily}_on_{event.lower()}()"
        )


def downgrade():
    for table, daily, event, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {daily}_{event.lower()} ON {table}")
    for name in {**MS_FUNCTIONS, **EG_FUNCTIONS}:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP AGGREGATE IF EXISTS rollup_histogram_sum(bigint[])")
    op.execute("DROP FUNCTION IF EXISTS rollup_histogram_trim(bigint[])")
    op.execute("DROP FUNCTION IF EXISTS rollup_histogram_accum(bigint[], bigint[])")
    op.execute("DROP FUNCTION IF EXISTS rollup_histogram_add(bigint[], bigint[], bigint)")
    op.drop_index(
        "ix_error_group_stats_daily_message_type_bucket", table_name="error_group_stats_daily"
    )
    op.drop_index("ix_error_group_stats_daily_bucket", table_name="error_group_stats_daily")
    op.drop_table("error_group_stats_daily")
    op.drop_index("ix_message_stats_daily_message_type_bucket", table_name="message_stats_daily")
    op.drop_table("message_stats_daily")
