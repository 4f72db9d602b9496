"""State of the investigation checks (DOI and PaNOSC search item per finished investigation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Identity,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

#: The values of `InvestigationCheck.status`.
PENDING, COMPLETE, EXPIRED, ERROR = "pending", "complete", "expired", "error"
STATUSES = (PENDING, ERROR, EXPIRED, COMPLETE)
#: Checks that are finished and never looked at again by the scheduled run.
FINAL_STATUSES = (COMPLETE, EXPIRED)


class InvestigationCheck(Base):
    """One row per (investigation name, visit id)."""

    __tablename__ = "investigation_checks"
    __table_args__ = (UniqueConstraint("name", "visit_id"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    visit_id: Mapped[str] = mapped_column(Text)
    end_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_checked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    #: None = unknown (not yet determined, or the last answer was inconclusive).
    has_doi: Mapped[bool | None] = mapped_column(Boolean)
    has_pss_item: Mapped[bool | None] = mapped_column(Boolean)
    #: [{"operations": [...], "at": iso}] — every request published to PACER.
    operations_sent: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    #: one of STATUSES: pending | complete | expired | error
    status: Mapped[str] = mapped_column(Text, server_default="pending", index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
