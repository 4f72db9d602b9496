"""indexes for the list filters the benchmarks found unindexed (bench/README.md)

At 5,000,000 messages, filters on `visit_id`, `routing_key`, `payload_format`, "acknowledged
only", type + instrument and type + errored scanned whole partitions: the capped count (LIMIT 10,001) had to
read 10,001 / selectivity rows through the heap. Each of these gives those filters an index that
matches them, so the list and its count read only matching rows.

Revision ID: bench_indexes
Revises: stats_rollups
Create Date: 2026-12-01 08:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "bench_indexes"
down_revision = "stats_rollups"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_visit_id", ["visit_id"], unique=False)
        batch_op.create_index(
            "ix_messages_routing_key_received_at", ["routing_key", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_messages_payload_format_received_at",
            ["payload_format", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_messages_message_type_instrument_received_at",
            ["message_type", "instrument", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_messages_acknowledged",
            [sa.literal_column("received_at DESC")],
            unique=False,
            postgresql_where=sa.text("acknowledged_at IS NOT NULL"),
        )
        # Error triage per type (`?type=...&status=errored`); small: errors only.
        batch_op.create_index(
            "ix_messages_unacknowledged_errors_type",
            ["message_type", sa.literal_column("received_at DESC")],
            unique=False,
            postgresql_where=sa.text("errored AND acknowledged_at IS NULL"),
        )


def downgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_unacknowledged_errors_type",
            postgresql_where=sa.text("errored AND acknowledged_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_messages_acknowledged", postgresql_where=sa.text("acknowledged_at IS NOT NULL")
        )
        batch_op.drop_index("ix_messages_message_type_instrument_received_at")
        batch_op.drop_index("ix_messages_payload_format_received_at")
        batch_op.drop_index("ix_messages_routing_key_received_at")
        batch_op.drop_index("ix_messages_visit_id")
