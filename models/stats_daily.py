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

from sqlalchemy import BigInteger, DateTime, Index, PrimaryKeyConstraint, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base
from .stats import ErrorGroupStatColumns, MessageStatColumns


class MessageStatDaily(MessageStatColumns, Base):
    """`message_stats` summed per (UTC day, message type, instrument); trigger-maintained.

    `max_processing_ms` is the greatest of the day's hourly rows; the histogram their element-wise
    sum, without trailing zero bins.
    """

    __tablename__ = "message_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("bucket", "message_type", "instrument", name="pk_message_stats_daily"),
        Index("ix_message_stats_daily_message_type_bucket", "message_type", "bucket"),
    )

    #: Start (00:00 UTC) of the day of the hourly buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ErrorGroupStatDaily(ErrorGroupStatColumns, Base):
    """`error_group_stats` summed per (fingerprint, UTC day, message type, instrument).

    First/last seen and the sample are taken over all the day's hourly rows. Besides those it
    keeps the same three over its *open* hourly rows only (count > acknowledged): the errors page,
    which hides acknowledged errors, takes them from the hourly rows that still have open errors,
    and these let the daily level answer it with the same timestamps and sample.
    """

    __tablename__ = "error_group_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint(
            "fingerprint", "bucket", "message_type", "instrument", name="pk_error_group_stats_daily"
        ),
        Index("ix_error_group_stats_daily_bucket", "bucket"),
        Index("ix_error_group_stats_daily_message_type_bucket", "message_type", "bucket"),
    )

    #: Start (00:00 UTC) of the day of the hourly buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The same over the hourly rows with open (unacknowledged) errors; NULL when none is open.
    open_first_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_sample_message_id: Mapped[int | None] = mapped_column(BigInteger)
    open_sample_error: Mapped[str | None] = mapped_column(Text)


class MessageStatMonthly(MessageStatColumns, Base):
    """`message_stats_daily` summed per (UTC month, message type, instrument); trigger-maintained
    from the daily rows (migration `monthly_rollups`), so equal to the month's hourly rows."""

    __tablename__ = "message_stats_monthly"
    __table_args__ = (
        PrimaryKeyConstraint(
            "bucket", "message_type", "instrument", name="pk_message_stats_monthly"
        ),
        Index("ix_message_stats_monthly_message_type_bucket", "message_type", "bucket"),
    )

    #: Start (00:00 UTC on the 1st) of the month of the daily buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ErrorGroupStatMonthly(ErrorGroupStatColumns, Base):
    """`error_group_stats_daily` summed per (fingerprint, UTC month, message type, instrument),
    with the same open (unacknowledged) first/last seen and sample; trigger-maintained."""

    __tablename__ = "error_group_stats_monthly"
    __table_args__ = (
        PrimaryKeyConstraint(
            "fingerprint",
            "bucket",
            "message_type",
            "instrument",
            name="pk_error_group_stats_monthly",
        ),
        Index("ix_error_group_stats_monthly_bucket", "bucket"),
        Index("ix_error_group_stats_monthly_message_type_bucket", "message_type", "bucket"),
    )

    #: Start (00:00 UTC on the 1st) of the month of the daily buckets summed here.
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    open_first_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_sample_message_id: Mapped[int | None] = mapped_column(BigInteger)
    open_sample_error: Mapped[str | None] = mapped_column(Text)
