"""Writes of the stats area: `rebuild_rollups` recomputes the rollups from `messages`.

The rollups are defined in one module, webapp.stats.rollups: what ingestion adds per batch, the
rebuild, and the database triggers that fold acknowledgements and hourly rows into the daily
rollups. This module keeps the names the CLI and the pages import. The rebuild is for repairs:
after the migration on an existing database, after a retention drop (dropped partitions leave
their rollups, which keep the history of the statistics), or after manual edits of `messages`.
"""

from __future__ import annotations

from .rollups import RebuildResult, hour_of, rebuild_rollups, sample_text

__all__ = ["RebuildResult", "hour_of", "rebuild_rollups", "sample_text"]
