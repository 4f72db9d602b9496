"""Aggregates maintained at ingestion so statistics and error pages never scan `messages`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, PrimaryKeyConstraint, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class MessageStatColumns:
    """Dimensions and measures shared by `message_stats` and its daily twin."""

    message_type: Mapped[str] = mapped_column(Text)
    #: Lower-cased instrument; '' when the message has none (a PK column cannot be NULL).
    instrument: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(BigInteger)
    errored: Mapped[int] = mapped_column(BigInteger)
    sum_processing_ms: Mapped[int] = mapped_column(BigInteger)
    max_processing_ms: Mapped[int] = mapped_column(BigInteger)
    #: Messages that had a processing time (the denominator of the mean).
    timed: Mapped[int] = mapped_column(BigInteger)
    #: Counts of the timed messages per log-spaced processing-time bin
    #: (webapp.stats.histogram.EDGES_MS: index i counts `width_bucket(ms, EDGES_MS) = i`), so
    #: percentiles come from the rollups. Shorter arrays mean zeros for the missing bins.
    processing_histogram: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )


class MessageStat(MessageStatColumns, Base):
    """Hourly rollup per (bucket, message type, instrument), upserted per ingested batch."""

    __tablename__ = "message_stats"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "message_type", "instrument", name="pk_message_stats"),
        Index("ix_message_stats_message_type_bucket", "message_type", "bucket"),
    )

    #: Start of the hour (UTC) of `received_at`.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ErrorGroup(Base):
    """Errors grouped by cause: one row per fingerprint."""

    __tablename__ = "error_groups"

    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    message_type: Mapped[str] = mapped_column(Text, index=True)
    callback: Mapped[str | None] = mapped_column(Text)
    exception_class: Mapped[str | None] = mapped_column(Text)
    #: Error text with numbers, hex runs, UUIDs, paths and quoted values masked.
    normalized_text: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    count: Mapped[int] = mapped_column(BigInteger)
    sample_message_id: Mapped[int] = mapped_column(BigInteger)
    sample_error: Mapped[str] = mapped_column(Text)


class ErrorGroupStatColumns:
    """Dimensions and measures shared by `error_group_stats` and its daily twin."""

    fingerprint: Mapped[str] = mapped_column(Text)
    message_type: Mapped[str] = mapped_column(Text)
    #: Lower-cased instrument; '' when the message has none.
    instrument: Mapped[str] = mapped_column(Text)
    #: Errored messages with this fingerprint.
    count: Mapped[int] = mapped_column(BigInteger)
    #: How many of them are acknowledged now.
    acknowledged: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Smallest message id of the row, and its error text: a sample inside any scope that sees
    #: this row (the global sample of `error_groups` may lie outside a restricted user's scope).
    sample_message_id: Mapped[int] = mapped_column(BigInteger)
    sample_error: Mapped[str] = mapped_column(Text)


class ErrorGroupStat(ErrorGroupStatColumns, Base):
    """Errors per (error group, hour, message type, instrument): the errors page and the top
    groups of /stats read this, restricted by the user's scope and the filters, never `messages`.

    Maintained in the batch transaction; `acknowledged` is kept right by the trigger
    `messages_ack_rollup` when messages are (un-)acknowledged (migration `stats_rollups`).
    """

    __tablename__ = "error_group_stats"
    __table_args__ = (
        PrimaryKeyConstraint(
            "fingerprint", "bucket", "message_type", "instrument", name="pk_error_group_stats"
        ),
        Index("ix_error_group_stats_bucket", "bucket"),
        Index("ix_error_group_stats_message_type_bucket", "message_type", "bucket"),
    )

    #: Start of the hour (UTC) of `received_at`.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
