"""Postgres advisory locks that keep scheduled jobs from overlapping across workers and hosts."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

# Stable 64-bit keys, one per job; never reuse a number for another job.
LOCK_PARTITIONS = 0x5041_4345_5201  # "PACER" + 1
LOCK_INVESTIGATION_CHECKS = 0x5041_4345_5202
LOCK_ROLLUP_REBUILD = 0x5041_4345_5203
LOCK_QUARANTINE_REPLAY = 0x5041_4345_5204
LOCK_ALERT_EVALUATION = 0x5041_4345_5210


def try_xact_lock(session: Session | Connection, key: int) -> bool:
    """Take the lock for the current transaction; False when another session holds it."""
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())
