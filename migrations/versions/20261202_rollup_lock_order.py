"""rollup lock order: the acknowledgement trigger locks error_group_stats rows in key order

The statement trigger `messages_ack_rollup` (migration `stats_rollups`) updated the hourly
`error_group_stats` rows of an (un-)acknowledgement in whatever order its join produced, while
the ingestion writer upserts them in key order: a bulk acknowledge and a batch of the same hour
could each hold a row the other needed next ("deadlock detected ... while inserting index tuple
in relation error_group_stats"), and PostgreSQL aborted one of them.

Every writer of the rollup rows now follows one lock order (RELIABILITY.md, "Rollup rows"):

1. `messages` rows (acknowledgements): in id order (webapp.actions.services);
2. `message_stats` rows, in key order (bucket, message_type, instrument), one statement;
3. the day locks of `message_stats_daily` (its statement triggers, in day order);
4. `error_groups` rows, in fingerprint order, one statement;
5. `error_group_stats` rows, in key order (bucket, message_type, instrument, fingerprint),
   text compared byte-wise (COLLATE "C", the order of Python's str), one statement;
6. the day locks of `error_group_stats_daily` (its statement triggers, in day order), after
   every row lock of the statement that fired them.

This function now computes the per-row deltas once, locks the rows in that key order
(SELECT ... ORDER BY ... FOR UPDATE), then updates them: the UPDATE itself waits for no one.
Rows whose delta is 0 (as many acknowledged as un-acknowledged by one statement) are left alone.
`flask rollups rebuild` takes the tables EXCLUSIVE in the order of 2, 4, 5 before anything else.

Revision ID: rollup_lock_order
Revises: daily_rollups
Create Date: 2026-12-02 09:00:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "rollup_lock_order"
down_revision = "daily_rollups"
branch_labels = None
depends_on = None

ACK_FUNCTION = """
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
            SELECT n.error_fingerprint AS fingerprint,
                   date_trunc('hour', n.received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       AS bucket,
                   n.message_type,
                   coalesce(n.instrument, '') AS instrument,
                   sum(CASE WHEN n.acknowledged_at IS NULL THEN -1 ELSE 1 END) AS delta
              FROM new_rows n
              JOIN old_rows o ON o.id = n.id AND o.received_at = n.received_at
             WHERE n.error_fingerprint IS NOT NULL
               AND (n.acknowledged_at IS NULL) <> (o.acknowledged_at IS NULL)
             GROUP BY 1, 2, 3, 4
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

#: The function as migration `stats_rollups` created it (for the downgrade).
PREVIOUS_ACK_FUNCTION = """
CREATE OR REPLACE FUNCTION error_group_stats_on_ack() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose acknowledged state flipped and that belong to an error group.
    UPDATE error_group_stats s
       SET acknowledged = s.acknowledged + d.delta
      FROM (
            SELECT n.error_fingerprint AS fingerprint,
                   date_trunc('hour', n.received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       AS bucket,
                   n.message_type,
                   coalesce(n.instrument, '') AS instrument,
                   sum(CASE WHEN n.acknowledged_at IS NULL THEN -1 ELSE 1 END) AS delta
              FROM new_rows n
              JOIN old_rows o ON o.id = n.id AND o.received_at = n.received_at
             WHERE n.error_fingerprint IS NOT NULL
               AND (n.acknowledged_at IS NULL) <> (o.acknowledged_at IS NULL)
             GROUP BY 1, 2, 3, 4
           ) d
     WHERE s.fingerprint = d.fingerprint
       AND s.bucket = d.bucket
       AND s.message_type = d.message_type
       AND s.instrument = d.instrument;
    RETURN NULL;
END
$$
"""


def upgrade():
    # The trigger `messages_ack_rollup` calls the function by name: replacing it is enough.
    op.execute(ACK_FUNCTION)


def downgrade():
    op.execute(PREVIOUS_ACK_FUNCTION)
