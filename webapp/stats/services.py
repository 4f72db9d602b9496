"""Writes of the stats area: `rebuild_rollups` recomputes the rollups from `messages`.

The rollups are defined in one module, webapp.stats.rollups: what ingestion adds per batch, the
rebuild, and the database triggers that fold acknowledgements and hourly rows into the daily
rollups. This module is the area's public face: the names the CLI, the pages and ingestion import. The rebuild is for repairs:
after the migration on an existing database, after a retention drop (dropped partitions leave
their rollups, which keep the history of the statistics), or after manual edits of `messages`.
"""

from __future__ import annotations

from .fingerprint import ErrorCause, fingerprint
from .rollups import RebuildResult, hour_of, rebuild_rollups, sample_text, upsert_batch

#: What other areas use: the rebuild (CLI, pages) and, for ingestion, the error fingerprint of a
#: report and the batch upsert of its rollups (the writer adds every batch in its transaction).
__all__ = [
    "ErrorCause",
    "RebuildResult",
    "fingerprint",
    "hour_of",
    "rebuild_rollups",
    "sample_text",
    "upsert_batch",
]
