"""Daily rollups: the hourly rollups of `models.stats` summed per UTC day.

/stats and /errors read these for the whole days of a range and the hourly rows only for the
partial hours at its edges (webapp.stats.queries), so a month is ~30 rows per (type, instrument)
instead of ~720. Nothing writes them directly: database triggers on `message_stats` and
`error_group_stats` apply every insert, update and delete of an hourly row, so the ingestion
writer, the acknowledgement trigger and `flask rollups rebuild` keep them exact without knowing
about them (migration `daily_rollups`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, PrimaryKeyConstraint, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class MessageStatDaily(Base):
    """`message_stats` summed per (UTC day, message type, instrument); trigger-maintained."""

    __tablename__ = "message_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "message_type", "instrument", name="pk_message_stats_daily"),
        Index("ix_message_stats_daily_message_type_bucket", "message_type", "bucket"),
    )

    #: Start (00:00 UTC) of the day of the hourly buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    message_type: Mapped[str] = mapped_column(Text)
    #: Lower-cased instrument; '' when the message has none.
    instrument: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(BigInteger)
    errored: Mapped[int] = mapped_column(BigInteger)
    sum_processing_ms: Mapped[int] = mapped_column(BigInteger)
    #: Greatest `max_processing_ms` of the day's hourly rows.
    max_processing_ms: Mapped[int] = mapped_column(BigInteger)
    timed: Mapped[int] = mapped_column(BigInteger)
    #: Element-wise sum of the hourly histograms, without trailing zero bins.
    processing_histogram: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )


class ErrorGroupStatDaily(Base):
    """`error_group_stats` summed per (fingerprint, UTC day, message type, instrument).

    Besides the day's first/last seen and sample (over all its hourly rows) it keeps the same
    three over its *open* hourly rows only (count > acknowledged): the errors page, which hides
    acknowledged errors, takes them from the hourly rows that still have open errors, and these
    let the daily level answer it with the same timestamps and sample.
    """

    __tablename__ = "error_group_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint(
            "fingerprint", "bucket", "message_type", "instrument", name="pk_error_group_stats_daily"
        ),
        Index("ix_error_group_stats_daily_bucket", "bucket"),
        Index("ix_error_group_stats_daily_message_type_bucket", "message_type", "bucket"),
    )

    fingerprint: Mapped[str] = mapped_column(Text)
    #: Start (00:00 UTC) of the day of the hourly buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    message_type: Mapped[str] = mapped_column(Text)
    #: Lower-cased instrument; '' when the message has none.
    instrument: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(BigInteger)
    acknowledged: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Smallest sample id of the day's hourly rows, and that row's sample text.
    sample_message_id: Mapped[int] = mapped_column(BigInteger)
    sample_error: Mapped[str] = mapped_column(Text)
    #: The same over the hourly rows with open (unacknowledged) errors; NULL when none is open.
    open_first_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_sample_message_id: Mapped[int | None] = mapped_column(BigInteger)
    open_sample_error: Mapped[str | None] = mapped_column(Text)
