"""Postgres advisory locks that keep scheduled jobs from overlapping across workers and hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def run_lock(session: Session, key: int) -> Iterator[bool]:
    """Session-level lock on a dedicated connection, held for a whole run of many transactions.

    Yields False when another session holds it. A transaction-level lock would be released by the
    run's own commits; if the process dies, PostgreSQL drops the connection and the lock with it.
    """
    engine = session.get_bind()
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
