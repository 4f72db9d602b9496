"""rollups direct ingest: the daily and monthly triggers return at once inside the writer's fold

The ingestion writer (webapp.stats.rollups.upsert_batch) now adds each batch's own aggregate to
the hourly, daily and monthly rollups itself, in the order the triggers took them (hourly rows, the
day's advisory lock, the daily rows, the month's lock, the monthly rows; message_stats, then
error_groups, then error_group_stats: RELIABILITY.md "Rollup rows"), with the transaction-local
setting `pacer.rollups_direct` = 'on'. Every daily and monthly INSERT / UPDATE / DELETE trigger
function first checks it and returns at once when it is on; all other writers (acknowledgements,
`flask rollups rebuild`, manual edits) leave it unset and the triggers keep the levels exact as
before. Ingestion's deltas are what the triggers computed from NEW - OLD: ingestion only adds.

The SQL below is this revision's own frozen copy of what webapp.stats.rollups generates
(`daily_trigger_functions()` and `monthly_trigger_functions()`; tests/stats/
test_rollup_definitions.py checks that they are equal). Downgrade re-creates them without the check.

Revision ID: rollups_direct_ingest
Revises: monthly_rollups
Create Date: 2026-12-05 01:30:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "rollups_direct_ingest"
down_revision = "monthly_rollups"
branch_labels = None
depends_on = None

#: The check each INSERT / UPDATE / DELETE function starts with (what downgrade removes).
SKIP = "\n    IF current_setting('pacer.rollups_direct', true) = 'on' THEN\n        RETURN NULL;\n    END IF;\n"

# name -> CREATE FUNCTION (frozen).
FUNCTIONS = {
    "message_stats_daily_on_insert": """CREATE FUNCTION message_stats_daily_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM new_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7301, lock_day);
    END LOOP;

    INSERT INTO message_stats_daily AS d (bucket, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram)
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM (SELECT 1 AS sign, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows) c
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
    "message_stats_daily_on_update": """CREATE FUNCTION message_stats_daily_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM new_rows UNION ALL SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7301, lock_day);
    END LOOP;

    INSERT INTO message_stats_daily AS d (bucket, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram)
    SELECT day, message_type, instrument, sum(sign * total), sum(sign * errored),
           sum(sign * sum_processing_ms),
           coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), 0), sum(sign * timed),
           rollup_histogram_trim(rollup_histogram_add(
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign > 0),
               rollup_histogram_sum(processing_histogram) FILTER (WHERE sign < 0), -1))
      FROM (SELECT 1 AS sign, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows UNION ALL SELECT -1 AS sign, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM old_rows) c
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

    DELETE FROM message_stats_daily d
     USING (SELECT (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows EXCEPT SELECT (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument FROM new_rows) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM message_stats s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');

    UPDATE message_stats_daily d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM (SELECT day, message_type, instrument FROM (SELECT 1 AS sign, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM new_rows UNION ALL SELECT -1 AS sign, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, total, errored, sum_processing_ms, max_processing_ms, timed, processing_histogram FROM old_rows) c GROUP BY 1, 2, 3 HAVING max(max_processing_ms) FILTER (WHERE sign < 0) > coalesce(max(max_processing_ms) FILTER (WHERE sign > 0), -1)) k
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

    RETURN NULL;
END
$$""",
    "message_stats_daily_on_delete": """CREATE FUNCTION message_stats_daily_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7301, lock_day);
    END LOOP;

    DELETE FROM message_stats_daily d
     USING (SELECT DISTINCT (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     WHERE d.bucket = k.day AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM message_stats s
                        WHERE s.message_type = k.message_type AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');

    UPDATE message_stats_daily d
       SET total = r.total, errored = r.errored, sum_processing_ms = r.sum_processing_ms,
           max_processing_ms = r.max_processing_ms, timed = r.timed,
           processing_histogram = r.processing_histogram
      FROM (SELECT DISTINCT (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
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

    RETURN NULL;
END
$$""",
    "message_stats_daily_on_truncate": """CREATE FUNCTION message_stats_daily_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN
    TRUNCATE message_stats_daily;
    RETURN NULL;
END
$$""",
    "error_group_stats_daily_on_insert": """CREATE FUNCTION error_group_stats_daily_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM new_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7302, lock_day);
    END LOOP;

    INSERT INTO error_group_stats_daily AS d (fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error)
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
      FROM (SELECT 1 AS sign, fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, count > acknowledged AS is_open FROM new_rows) c
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
    "error_group_stats_daily_on_update": """CREATE FUNCTION error_group_stats_daily_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM new_rows UNION ALL SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7302, lock_day);
    END LOOP;

    INSERT INTO error_group_stats_daily AS d (fingerprint, bucket, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, open_first_seen_at, open_last_seen_at, open_sample_message_id, open_sample_error)
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
      FROM (SELECT 1 AS sign, fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, count > acknowledged AS is_open FROM new_rows UNION ALL SELECT -1 AS sign, fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, count > acknowledged AS is_open FROM old_rows) c
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

    DELETE FROM error_group_stats_daily d
     USING (SELECT fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows EXCEPT SELECT fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), message_type, instrument FROM new_rows) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM error_group_stats s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');

    UPDATE error_group_stats_daily d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM (SELECT fingerprint, day, message_type, instrument FROM (SELECT 1 AS sign, fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, count > acknowledged AS is_open FROM new_rows UNION ALL SELECT -1 AS sign, fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument, count, acknowledged, first_seen_at, last_seen_at, sample_message_id, sample_error, count > acknowledged AS is_open FROM old_rows) c GROUP BY 1, 2, 3, 4 HAVING (bool_or(sign < 0) AND (NOT coalesce(bool_or(sign > 0), false) OR min(first_seen_at) FILTER (WHERE sign > 0) > min(first_seen_at) FILTER (WHERE sign < 0) OR max(last_seen_at) FILTER (WHERE sign > 0) < max(last_seen_at) FILTER (WHERE sign < 0) OR min(sample_message_id) FILTER (WHERE sign > 0) > min(sample_message_id) FILTER (WHERE sign < 0) OR (min(sample_message_id) FILTER (WHERE sign > 0) = min(sample_message_id) FILTER (WHERE sign < 0) AND (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign > 0))[1] IS DISTINCT FROM (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign < 0))[1]))) OR (bool_or(sign < 0 AND is_open) AND (NOT coalesce(bool_or(sign > 0 AND is_open), false) OR min(first_seen_at) FILTER (WHERE sign > 0 AND is_open) > min(first_seen_at) FILTER (WHERE sign < 0 AND is_open) OR max(last_seen_at) FILTER (WHERE sign > 0 AND is_open) < max(last_seen_at) FILTER (WHERE sign < 0 AND is_open) OR min(sample_message_id) FILTER (WHERE sign > 0 AND is_open) > min(sample_message_id) FILTER (WHERE sign < 0 AND is_open) OR (min(sample_message_id) FILTER (WHERE sign > 0 AND is_open) = min(sample_message_id) FILTER (WHERE sign < 0 AND is_open) AND (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign > 0 AND is_open))[1] IS DISTINCT FROM (array_agg(sample_error ORDER BY sample_message_id) FILTER (WHERE sign < 0 AND is_open))[1])))) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), min(s.first_seen_at) , max(s.last_seen_at) , min(s.sample_message_id) , (array_agg(s.sample_error ORDER BY s.sample_message_id) )[1], min(s.first_seen_at) FILTER (WHERE s.count > s.acknowledged), max(s.last_seen_at) FILTER (WHERE s.count > s.acknowledged), min(s.sample_message_id) FILTER (WHERE s.count > s.acknowledged), (array_agg(s.sample_error ORDER BY s.sample_message_id) FILTER (WHERE s.count > s.acknowledged))[1]
              FROM error_group_stats s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours'
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;

    RETURN NULL;
END
$$""",
    "error_group_stats_daily_on_delete": """CREATE FUNCTION error_group_stats_daily_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

    FOR lock_day IN
        SELECT DISTINCT (extract(epoch FROM (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) / 86400)::integer
          FROM (SELECT bucket FROM old_rows) b ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(7302, lock_day);
    END LOOP;

    DELETE FROM error_group_stats_daily d
     USING (SELECT DISTINCT fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND NOT EXISTS (SELECT 1 FROM error_group_stats s
                        WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
                          AND s.instrument = k.instrument
                          AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours');

    UPDATE error_group_stats_daily d
       SET count = r.count, acknowledged = r.acknowledged, first_seen_at = r.f,
           last_seen_at = r.l, sample_message_id = r.sid, sample_error = r.txt,
           open_first_seen_at = r.o_f, open_last_seen_at = r.o_l,
           open_sample_message_id = r.osid, open_sample_error = r.otxt
      FROM (SELECT DISTINCT fingerprint, (date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day, message_type, instrument FROM old_rows) k
     CROSS JOIN LATERAL (
            SELECT sum(s.count), sum(s.acknowledged), min(s.first_seen_at) , max(s.last_seen_at) , min(s.sample_message_id) , (array_agg(s.sample_error ORDER BY s.sample_message_id) )[1], min(s.first_seen_at) FILTER (WHERE s.count > s.acknowledged), max(s.last_seen_at) FILTER (WHERE s.count > s.acknowledged), min(s.sample_message_id) FILTER (WHERE s.count > s.acknowledged), (array_agg(s.sample_error ORDER BY s.sample_message_id) FILTER (WHERE s.count > s.acknowledged))[1]
              FROM error_group_stats s
             WHERE s.fingerprint = k.fingerprint AND s.message_type = k.message_type
               AND s.instrument = k.instrument
               AND s.bucket >= k.day AND s.bucket < k.day + interval '24 hours'
           ) AS r(count, acknowledged, f, l, sid, txt, o_f, o_l, osid, otxt)
     WHERE d.fingerprint = k.fingerprint AND d.bucket = k.day
       AND d.message_type = k.message_type AND d.instrument = k.instrument
       AND r.count IS NOT NULL;

    RETURN NULL;
END
$$""",
    "error_group_stats_daily_on_truncate": """CREATE FUNCTION error_group_stats_daily_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_day integer;
BEGIN
    TRUNCATE error_group_stats_daily;
    RETURN NULL;
END
$$""",
    "message_stats_monthly_on_insert": """CREATE FUNCTION message_stats_monthly_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lock_month integer;
BEGIN

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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

    IF current_setting('pacer.rollups_direct', true) = 'on' THEN
        RETURN NULL;
    END IF;

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


def _replace(sql: str) -> str:
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade():
    for sql in FUNCTIONS.values():
        op.execute(_replace(sql))


def downgrade():
    for sql in FUNCTIONS.values():
        op.execute(_replace(sql.replace(SKIP, "")))
