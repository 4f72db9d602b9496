"""monthly rollups: message_stats_monthly and error_group_stats_monthly, kept by triggers

/stats and /errors read whole UTC months from these, whole days from the daily rollups and only
the partial days' hours from the hourly ones (all history at 5,000,000 messages: ~3,100 + ~4,200
monthly rows instead of ~87,500 + ~96,500 daily ones; bench/README.md).

The same construction as migration `daily_rollups`, one level up: statement-level triggers on the
DAILY tables (AFTER INSERT / UPDATE / DELETE with transition tables, AFTER TRUNCATE) fold every
change of a day row into its UTC month. The daily rows are only written by the daily triggers, so
the ingestion writer, the acknowledgement trigger and `flask rollups rebuild` keep the monthly
level exact through them (hourly -> daily triggers -> monthly triggers).

- Each trigger first takes a transaction advisory lock per UTC month it touches, in month order
  (namespaces 7303 / 7304). They run inside the statements of the daily triggers, i.e. after the
  day locks of the same table and every row lock of the hourly statement (RELIABILITY.md,
  "Rollup rows").
- A call whose transition tables are empty returns at once (the daily triggers run statements
  that change nothing on most batches: an upsert fires its INSERT and its UPDATE trigger).
- Deltas (NEW - OLD) are applied per month row; a change that could lower a maximum, a first/last
  seen or a sample (open or not) recomputes the month row from its day rows; DELETE drops the
  emptied month rows and recomputes the others.
- The monthly error rows keep the open (unacknowledged) first/last seen and sample like the daily
  ones, taken from the day rows' open_* columns.

The SQL below is this revision's own frozen copy of what webapp.stats.rollups generates
(`monthly_trigger_functions`, `MONTHLY_TRIGGERS`; tests/stats/test_rollup_definitions.py checks
that they are equal).

Revision ID: monthly_rollups
Revises: visit_id_keyset
Create Date: 2026-12-04 23:00:00.000000

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "monthly_rollups"
down_revision = "visit_id_keyset"
branch_labels = None
depends_on = None

LOCK_NAMESPACES = {"message_stats": 7303, "error_group_stats": 7304}

TRIGGERS = [
    ("message_stats_daily", "message_stats_monthly", "INSERT", "NEW TABLE AS new_rows"),
    (
        "message_stats_daily",
        "message_stats_monthly",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    ("message_stats_daily", "message_stats_monthly", "DELETE", "OLD TABLE AS old_rows"),
    ("message_stats_daily", "message_stats_monthly", "TRUNCATE", None),
    ("error_group_stats_daily", "error_group_stats_monthly", "INSERT", "NEW TABLE AS new_rows"),
    (
        "error_group_stats_daily",
        "error_group_stats_monthly",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    ("error_group_stats_daily", "error_group_stats_monthly", "DELETE", "OLD TABLE AS old_rows"),
    ("error_group_stats_daily", "error_group_stats_monthly", "TRUNCATE", None),
]

# name -> CREATE FUNCTION (frozen).
FUNCTIONS = {
    "message_stats_monthly_on_insert": """CREATE FUNCTION message_stats_monthly_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM new_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7303, lock_month);
    END LOOP;

    INSERT INTO message_stats_monthly AS d (bucket, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram)
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM (SELECT 1 AS sign, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows) c
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (bucket, message_type, instrument) DO UPDATE SET
        total = d.total + EXCLUDED.total,
        errored = d.errored + EXCLUDED.errored,
        sum_processing_ms = d.sum_processing_ms + EXCLUDED.sum_processing_ms,
        max_processing_ms = GREATEST(d.max_processing_ms, EXCLUDED.max_processing_ms),
        timed = d.timed + EXCLUDED.timed,
        processing_histogram = rollup_histogram_trim(
            rollup_histogram_add(d.processing_histogram, EXCLUDED.processing_histogram, 1));

    RETURN NULL;
END
$$""",
    "message_stats_monthly_on_update": """CREATE FUNCTION message_stats_monthly_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM new_rows) AND NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM new_rows UNION ALL SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7303, lock_month);
    END LOOP;

    INSERT INTO message_stats_monthly AS d (bucket, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram)
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM (SELECT 1 AS sign, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows UNION ALL SELECT -1 AS sign, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM old_rows) c
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (bucket, message_type, instrument) DO UPDATE SET
        total = d.total + EXCLUDED.total,
        errored = d.errored + EXCLUDED.errored,
        sum_processing_ms = d.sum_processing_ms + EXCLUDED.sum_processing_ms,
        max_processing_ms = GREATEST(d.max_processing_ms, EXCLUDED.max_processing_ms),
        timed = d.timed + EXCLUDED.timed,
        processing_histogram = rollup_histogram_trim(
            rollup_histogram_add(d.processing_histogram, EXCLUDED.processing_histogram, 1));

    DELETE FROM message_stats_monthly d
     USING (SELECT (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows EXCEPT SELECT (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument FROM new_rows) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM message_stats_daily s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');

    UPDATE message_stats_monthly d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM (SELECT day, message_type, instrument FROM (SELECT 1 AS sign, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows UNION ALL SELECT -1 AS sign, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM old_rows) c GROUP BY 1, 2, 3 HAVING max(max_processing_ms) FILTER (WHERE sign < 0) > coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), -1)) k
     CROSS JOIN LATERAL (
            SELECT sum(s.total) AS total, sum(s.errored) AS errored,
                   sum(s.sum_processing_ms) AS sum_processing_ms,
                   max(s.max_processing_ms) AS max_processing_ms, sum(s.timed) AS timed,
                   rollup_histogram_sum(s.processing_histogram) AS processing_histogram
              FROM message_stats_daily s
             WHERE s.message_type = k.message_type AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC') r
     WHERE d.bucket = k.day AND d.message_type = k.message_type
       AND d.instrument = k.instrument AND r.total IS NOT NULL;

    RETURN NULL;
END
$$""",
    "message_stats_monthly_on_delete": """CREATE FUNCTION message_stats_monthly_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7303, lock_month);
    END LOOP;

    DELETE FROM message_stats_monthly d
     USING (SELECT DISTINCT (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM message_stats_daily s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');

    UPDATE message_stats_monthly d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM (SELECT DISTINCT (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     CROSS JOIN LATERAL (
            SELECT sum(s.total) AS total, sum(s.errored) AS errored,
                   sum(s.sum_processing_ms) AS sum_processing_ms,
                   max(s.max_processing_ms) AS max_processing_ms, sum(s.timed) AS timed,
                   rollup_histogram_sum(s.processing_histogram) AS processing_histogram
              FROM message_stats_daily s
             WHERE s.message_type = k.message_type AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC') r
     WHERE d.bucket = k.day AND d.message_type = k.message_type
       AND d.instrument = k.instrument AND r.total IS NOT NULL;

    RETURN NULL;
END
$$""",
    "message_stats_monthly_on_truncate": """CREATE FUNCTION message_stats_monthly_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN
    TRUNCATE message_stats_monthly;
    RETURN NULL;
END
$$""",
    "error_group_stats_monthly_on_insert": """CREATE FUNCTION error_group_stats_monthly_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM new_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7304, lock_month);
    END LOOP;

    INSERT INTO error_group_stats_monthly AS d (fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error)
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
      FROM (SELECT 1 AS sign, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, false AS is_open FROM new_rows UNION ALL SELECT 1, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument, 0, 0, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error, true FROM new_rows WHERE open_sample_message_id IS NOT NULL) c
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
    ON CONFLICT (fingerprint, bucket, message_type, instrument) DO UPDATE SET
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

    RETURN NULL;
END
$$""",
    "error_group_stats_monthly_on_update": """CREATE FUNCTION error_group_stats_monthly_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM new_rows) AND NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM new_rows UNION ALL SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7304, lock_month);
    END LOOP;

    INSERT INTO error_group_stats_monthly AS d (fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error)
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
      FROM (SELECT 1 AS sign, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, false AS is_open FROM new_rows UNION ALL SELECT 1, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument, 0, 0, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error, true FROM new_rows WHERE open_sample_message_id IS NOT NULL UNION ALL SELECT -1 AS sign, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, false AS is_open FROM old_rows UNION ALL SELECT -1, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument, 0, 0, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error, true FROM old_rows WHERE open_sample_message_id IS NOT NULL) c
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
    ON CONFLICT (fingerprint, bucket, message_type, instrument) DO UPDATE SET
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

    DELETE FROM error_group_stats_monthly d
     USING (SELECT fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows EXCEPT SELECT fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument FROM new_rows) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM error_group_stats_daily s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');

    UPDATE error_group_stats_monthly d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM (SELECT fingerprint, day, message_type, instrument FROM (SELECT 1 AS sign, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, false AS is_open FROM new_rows UNION ALL SELECT 1, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument, 0, 0, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error, true FROM new_rows WHERE open_sample_message_id IS NOT NULL UNION ALL SELECT -1 AS sign, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, false AS is_open FROM old_rows UNION ALL SELECT -1, fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument, 0, 0, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error, true FROM old_rows WHERE open_sample_message_id IS NOT NULL) c GROUP BY 1, 2, 3, 4 HAVING (bool_or(sign < 0) AND (NOT coalesce(bool_or(sign > 0), false) OR min(first_seen_at) FILTER (WHERE sign > 0) > min(first_seen_at) FILTER (WHERE sign < 0) OR max(last_seen_at) FILTER (WHERE sign > 0) < max(last_seen_at) FILTER (WHERE sign < 0) OR min(sample_message_id) FILTER (WHERE sign > 0) > min(sample_message_id) FILTER (WHERE sign < 0) OR (min(sample_message_id) FILTER (WHERE sign > 0) = min(sample_message_id) FILTER (WHERE sign < 0) AND (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign > 0))[1] IS DISTINCT FROM (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign < 0))[1]))) OR (bool_or(sign < 0 AND is_open) AND (NOT coalesce(bool_or(sign > 0 AND is_open), false) OR min(first_seen_at) FILTER (WHERE sign > 0 AND is_open) > min(first_seen_at) FILTER (WHERE sign < 0 AND is_open) OR max(last_seen_at) FILTER (WHERE sign > 0 AND is_open) < max(last_seen_at) FILTER (WHERE sign < 0 AND is_open) OR min(sample_message_id) FILTER (WHERE sign > 0 AND is_open) > min(sample_message_id) FILTER (WHERE sign < 0 AND is_open) OR (min(sample_message_id) FILTER (WHERE sign > 0 AND is_open) = min(sample_message_id) FILTER (WHERE sign < 0 AND is_open) AND (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign > 0 AND is_open))[1] IS DISTINCT FROM (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign < 0 AND is_open))[1])))) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), min(s.first_seen_at), max(s.last_seen_at), min(s.sample_message_id), (array_agg(s.sample_error ORDER BY s.sample_message_id))[1], min(s.open_first_seen_at), max(s.open_last_seen_at), min(s.open_sample_message_id), (array_agg(s.open_sample_error ORDER BY s.open_sample_message_id) FILTER (WHERE s.open_sample_message_id IS NOT NULL))[1]
              FROM error_group_stats_daily s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;

    RETURN NULL;
END
$$""",
    "error_group_stats_monthly_on_delete": """CREATE FUNCTION error_group_stats_monthly_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;

    FOR lock_month IN
        SELECT DISTINCT (extract(year FROM bucket AT TIME ZONE 'UTC') * 12 + extract(month FROM bucket AT TIME ZONE 'UTC') - 1)::integer
          FROM (SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7304, lock_month);
    END LOOP;

    DELETE FROM error_group_stats_monthly d
     USING (SELECT DISTINCT fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM error_group_stats_daily s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');

    UPDATE error_group_stats_monthly d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM (SELECT DISTINCT fingerprint, (date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), min(s.first_seen_at), max(s.last_seen_at), min(s.sample_message_id), (array_agg(s.sample_error ORDER BY s.sample_message_id))[1], min(s.open_first_seen_at), max(s.open_last_seen_at), min(s.open_sample_message_id), (array_agg(s.open_sample_error ORDER BY s.open_sample_message_id) FILTER (WHERE s.open_sample_message_id IS NOT NULL))[1]
              FROM error_group_stats_daily s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < ((k.day AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;

    RETURN NULL;
END
$$""",
    "error_group_stats_monthly_on_truncate": """CREATE FUNCTION error_group_stats_monthly_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN
    TRUNCATE error_group_stats_monthly;
    RETURN NULL;
END
$$""",
}


def _month(column: str) -> str:
    return f"(date_trunc('month', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


BACKFILL = [
    f"""
    INSERT INTO message_stats_monthly (bucket, message_type, instrument, total, errored,
                                       sum_processing_ms, max_processing_ms, timed,
                                       processing_histogram)
    SELECT {_month("bucket")}, message_type, instrument, sum(total), sum(errored),
           sum(sum_processing_ms), max(max_processing_ms), sum(timed),
           rollup_histogram_sum(processing_histogram)
      FROM message_stats_daily
     GROUP BY 1, 2, 3
    """,
    f"""
    INSERT INTO error_group_stats_monthly (fingerprint, bucket, message_type, instrument, count,
                                           acknowledged, first_seen_at, last_seen_at,
                                           sample_message_id, sample_error, open_first_seen_at,
                                           open_last_seen_at, open_sample_message_id,
                                           open_sample_error)
    SELECT fingerprint, {_month("bucket")}, message_type, instrument, sum(count),
           sum(acknowledged), min(first_seen_at), max(last_seen_at), min(sample_message_id),
           (array_agg(sample_error ORDER BY sample_message_id))[1],
           min(open_first_seen_at), max(open_last_seen_at), min(open_sample_message_id),
           (array_agg(open_sample_error ORDER BY open_sample_message_id)
            FILTER (WHERE open_sample_message_id IS NOT NULL))[1]
      FROM error_group_stats_daily
     GROUP BY 1, 2, 3, 4
    """,
]


def upgrade():
    op.create_table(
        "message_stats_monthly",
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
            "bucket", "message_type", "instrument", name="pk_message_stats_monthly"
        ),
    )
    op.create_index(
        "ix_message_stats_monthly_message_type_bucket",
        "message_stats_monthly",
        ["message_type", "bucket"],
    )
    op.create_table(
        "error_group_stats_monthly",
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
            name="pk_error_group_stats_monthly",
        ),
    )
    op.create_index("ix_error_group_stats_monthly_bucket", "error_group_stats_monthly", ["bucket"])
    op.create_index(
        "ix_error_group_stats_monthly_message_type_bucket",
        "error_group_stats_monthly",
        ["message_type", "bucket"],
    )
    for sql in FUNCTIONS.values():
        op.execute(sql)
    # No day row may change between the backfill and the triggers (it would be missed).
    op.execute(
        "LOCK TABLE message_stats_daily, error_group_stats_daily IN SHARE ROW EXCLUSIVE MODE"
    )
    for statement in BACKFILL:
        op.execute(statement)
    for daily, monthly, event, referencing in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {monthly}_{event.lower()} AFTER {event} ON {daily} "
            + (f"REFERENCING {referencing} " if referencing else "")
            + f"FOR EACH STATEMENT EXECUTE FUNCTION {monthly}_on_{event.lower()}()"
        )


def downgrade():
    for daily, monthly, event, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {monthly}_{event.lower()} ON {daily}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index(
        "ix_error_group_stats_monthly_message_type_bucket", table_name="error_group_stats_monthly"
    )
    op.drop_index("ix_error_group_stats_monthly_bucket", table_name="error_group_stats_monthly")
    op.drop_table("error_group_stats_monthly")
    op.drop_index(
        "ix_message_stats_monthly_message_type_bucket", table_name="message_stats_monthly"
    )
    op.drop_table("message_stats_monthly")
