"""stats rollups: processing-time histograms, error_group_stats and its acknowledgement trigger

`message_stats.processing_histogram` lets /stats interpolate median and p95 from the rollups;
`error_group_stats` (fingerprint x hour x type x instrument) lets /errors and the top groups of
/stats honour scope, filters and "include acknowledged" without scanning `messages`.

The statement trigger `messages_ack_rollup` keeps `error_group_stats.acknowledged` right for every
(un-)acknowledgement, whatever code path issues the UPDATE (single, bulk, admin, SQL).

After upgrading a database that already holds messages, run `flask rollups rebuild` once to fill
the new columns and table from `messages`.

Revision ID: stats_rollups
Revises: 0001
Create Date: 2026-11-23 04:00:55.159541

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "stats_rollups"
down_revision = "0001"
branch_labels = None
depends_on = None

ACK_FUNCTION = """
CREATE FUNCTION error_group_stats_on_ack() RETURNS trigger LANGUAGE plpgsql AS $$
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

ACK_TRIGGER = """
CREATE TRIGGER messages_ack_rollup
    AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION error_group_stats_on_ack()
"""


def upgrade():
    op.create_table(
        "error_group_stats",
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
        sa.PrimaryKeyConstraint(
            "fingerprint", "bucket", "message_type", "instrument", name="pk_error_group_stats"
        ),
    )
    with op.batch_alter_table("error_group_stats", schema=None) as batch_op:
        batch_op.create_index("ix_error_group_stats_bucket", ["bucket"], unique=False)
        batch_op.create_index(
            "ix_error_group_stats_message_type_bucket", ["message_type", "bucket"], unique=False
        )

    with op.batch_alter_table("message_stats", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "processing_histogram",
                postgresql.ARRAY(sa.BigInteger()),
                server_default=sa.text("'{}'::bigint[]"),
                nullable=False,
            )
        )
    op.execute(ACK_FUNCTION)
    op.execute(ACK_TRIGGER)


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS messages_ack_rollup ON messages")
    op.execute("DROP FUNCTION IF EXISTS error_group_stats_on_ack()")
    with op.batch_alter_table("message_stats", schema=None) as batch_op:
        batch_op.drop_column("processing_histogram")

    with op.batch_alter_table("error_group_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_error_group_stats_message_type_bucket")
        batch_op.drop_index("ix_error_group_stats_bucket")

    op.drop_table("error_group_stats")
