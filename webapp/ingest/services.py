"""What the rest of the dashboard asks of the ingest area (the admin pages, the CLI)."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from .replay import ReplayResult, replay_quarantine
from .writer import ParseOptions


def replay_quarantined(settings: Any, ids: list[int] | None = None) -> ReplayResult:
    """Ingest the waiting quarantined bodies (all, or `ids`) that are valid reports now.

    Runs on a connection of its own, like the worker's writer, and commits there.
    """
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    raw = db.engine.raw_connection()
    try:
        return replay_quarantine(raw.dbapi_connection, options, ids)
    finally:
        raw.close()
