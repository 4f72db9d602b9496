"""Liveness records written by the worker and beat, read by /healthz and /metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class Heartbeat(Base):
    """`beat` (every minute from Celery beat) and `ingest:<host>:<pid>` (after each batch)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Counters and last-batch figures for /metrics (ingested, quarantined, duplicates, ...).
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
