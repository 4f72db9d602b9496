"""Reads of the admin area."""

from __future__ import annotations

from sqlalchemy import select

from models import MessageStat

from ..extensions import db


def known_message_types() -> list[str]:
    """Every message type seen so far (from the hourly rollups, never a scan of `messages`)."""
    return list(
        db.session.scalars(
            select(MessageStat.message_type).distinct().order_by(MessageStat.message_type)
        )
    )
