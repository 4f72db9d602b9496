"""Reports received from PACER, their dedupe receipts and the quarantine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

#: Name prefix of the range partitions of `messages` (created at run time, not by migrations).
#: PostgreSQL NOTIFY channel the ingestion writer signals new messages on (payload: the batch's
#: newest id) and the live sockets LISTEN to.
NOTIFY_CHANNEL = "pacer_messages"

PARTITION_PREFIX = "messages_p"
DEFAULT_PARTITION = "messages_default"


class Message(Base):
    """One report: a message PACER processed. Range-partitioned by `received_at`."""

    __tablename__ = "messages"
    __table_args__ = (
        # Postgres requires the partition key in every unique constraint.
        PrimaryKeyConstraint("id", "received_at", name="pk_messages"),
        Index("ix_messages_received_at_id", text("received_at DESC"), text("id DESC")),
        Index("ix_messages_message_type_received_at", "message_type", "received_at"),
        Index("ix_messages_instrument_received_at", "instrument", "received_at"),
        Index("ix_messages_investigation", "investigation"),
        Index("ix_messages_dataset", "dataset"),
        Index("ix_messages_dataset_id", "dataset_id"),
        Index("ix_messages_hash", "hash"),
        Index("ix_messages_report_id", "report_id"),
        # Migration bench_indexes: filters the 5M-row benchmark found unindexed.
        # Migration visit_id_keyset: in keyset order (bench/README.md, issue 17 item 4).
        Index("ix_messages_visit_id_received_at", "visit_id", "received_at"),
        Index("ix_messages_routing_key_received_at", "routing_key", "received_at"),
        Index("ix_messages_payload_format_received_at", "payload_format", "received_at"),
        Index(
            "ix_messages_message_type_instrument_received_at",
            "message_type",
            "instrument",
            "received_at",
        ),
        Index(
            "ix_messages_acknowledged",
            text("received_at DESC"),
            postgresql_where=text("acknowledged_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_unacknowledged_errors_type",
            "message_type",
            text("received_at DESC"),
            postgresql_where=text("errored AND acknowledged_at IS NULL"),
        ),
        Index(
            "ix_messages_unacknowledged_errors",
            text("received_at DESC"),
            postgresql_where=text("errored AND acknowledged_at IS NULL"),
        ),
        Index(
            "ix_messages_error_fingerprint",
            "error_fingerprint",
            "received_at",
            postgresql_where=text("error_fingerprint IS NOT NULL"),
        ),
        Index(
            "ix_messages_object_identifiers",
            "object_identifiers",
            postgresql_using="gin",
            postgresql_ops={"object_identifiers": "jsonb_path_ops"},
        ),
        Index(
            "ix_messages_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
        {
            "postgresql_partition_by": "RANGE (received_at)",
            "comment": "Reports from PACER consumers, one per processed message",
        },
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    #: Set by the dashboard (UTC) when the batch is written; the partition key.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Envelope `id` of the report, or `sha256:<digest of body>` when it had none.
    report_id: Mapped[str] = mapped_column(Text)
    message_type: Mapped[str] = mapped_column(Text)
    processing_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processing_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processing_ms: Mapped[int | None] = mapped_column(Integer)
    #: Opaque producer hash (16 or 64 hex chars); equal hashes usually mean the same payload.
    hash: Mapped[str | None] = mapped_column(Text)
    #: Detected format: json, xml or text.
    payload_format: Mapped[str] = mapped_column(Text)
    #: Raw payload text exactly as received (re-ingestion publishes it); never truncated.
    payload: Mapped[str | None] = mapped_column(Text)
    errored: Mapped[bool] = mapped_column(Boolean)
    #: {callback: "ExceptionClass: text"} or, from old producers, a string.
    error_message: Mapped[Any] = mapped_column(JSONB)
    traceback: Mapped[Any | None] = mapped_column(JSONB)
    exchange_name: Mapped[str | None] = mapped_column(Text)
    routing_key: Mapped[str | None] = mapped_column(Text)
    object_identifiers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: Lower-cased; from the identifiers, else from the payload's top-level `instrument`.
    instrument: Mapped[str | None] = mapped_column(Text)
    investigation: Mapped[str | None] = mapped_column(Text)
    dataset: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[str | None] = mapped_column(Text)
    visit_id: Mapped[str | None] = mapped_column(Text)
    #: Versioned (`v1:`) fingerprint of the first error, grouping messages by cause.
    error_fingerprint: Mapped[str | None] = mapped_column(Text)
    #: Lower-cased identifiers and error text, trigram-indexed for free-text search.
    search_text: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    #: Unknown kwargs and SDK extras (consumer, host, attempt, headers), kept verbatim.
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ReportReceipt(Base):
    """Dedupe receipts: one row per report id seen in the last DEDUPE_WINDOW_DAYS."""

    __tablename__ = "report_receipts"

    report_id: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class QuarantinedReport(Base):
    """A body that was not a valid report: kept raw with the reason, replayable after a fix."""

    __tablename__ = "quarantined_reports"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    routing_key: Mapped[str | None] = mapped_column(Text)
    #: Set when a replay ingested it (or found it a duplicate); NULL while it waits.
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Message id created by the replay, if any.
    replayed_message_id: Mapped[int | None] = mapped_column(BigInteger)
