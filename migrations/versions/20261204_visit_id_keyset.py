"""visit_id filter in keyset order: (visit_id, received_at) replaces (visit_id)

The 1,000,000 vs 5,000,000-row benchmark (bench/README.md, issue 17 item 4) found the
`visit_id` list 1.7-2.0x slower at 5 M: with an index on `visit_id` alone the newest page is a
bitmap scan of every message of the visit and a sort, and a visit has 5x the messages at 5 M.
With `received_at` in the index the list is a Merge Append of per-partition index scans in
keyset order that stops after one page, like the instrument filter (flat). It replaces the
old index (equality lookups use its prefix), so ingestion maintains no more indexes than before.

Revision ID: visit_id_keyset
Revises: alerts
Create Date: 2026-12-04 22:40:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "visit_id_keyset"
down_revision = "alerts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_visit_id_received_at", ["visit_id", "received_at"], unique=False
        )
        batch_op.drop_index("ix_messages_visit_id")


def downgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_visit_id", ["visit_id"], unique=False)
        batch_op.drop_index("ix_messages_visit_id_received_at")
