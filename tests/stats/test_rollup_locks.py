"""Lock order of the rollup rows (RELIABILITY.md, "Rollup rows"): ingestion batches and
acknowledgements take the hourly `error_group_stats` rows in one key order, and the per-day locks
of the daily rollups only after them, so they wait for each other and never deadlock.

Each test makes one interleaving deterministic with a gate: a third connection holds one hourly
row, a batch runs into it mid-way (holding the rows before it), an acknowledgement starts, then
the gate lets go. Before the fix both tests ended in "deadlock detected"."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg2

from tests.conftest import admin_dsn
from tests.factories import parse_options
from tests.processes import wait_for
from tests.stats.support import error_body
from webapp.ingest.writer import RawReport, write_batch
from webapp.stats.fingerprint import fingerprint

HOUR = datetime(2026, 2, 10, 14, 0, tzinfo=UTC)


def _errors(word: str) -> dict[str, str]:
    return {f"callback_func_{word}": f"KeyError: {word}"}


def _bodies(words: list[str]) -> list[bytes]:
    """One errored report per word, each its own error group (same hour, type, instrument)."""
    return [error_body(callback=f"callback_func_{w}", error=f"KeyError: {w}") for w in words]


def _seed(pg, settings, words: list[str]) -> list[tuple[str, int]]:
    """One message per word in HOUR, the smallest key's hourly row written last (so that the
    rows' physical order is not the key order either): (fingerprint, message id) in key order."""
    by_key = sorted(words, key=lambda w: fingerprint("dataset-ingestion", _errors(w)).fingerprint)
    for part, minute in ((by_key[1:], 1), (by_key[:1], 2)):
        written = write_batch(
            pg,
            [RawReport(b) for b in _bodies(part)],
            parse_options(settings),
            now=HOUR + timedelta(minutes=minute),
        )
        assert written.stored == len(part)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT fingerprint, sample_message_id FROM error_group_stats "
            'ORDER BY bucket, message_type, instrument, fingerprint COLLATE "C"'
        )
        keys = cur.fetchall()
    pg.commit()
    assert len(keys) == len(words)
    return keys


def _state(pg, pid: int) -> str | None:
    """'Lock' while backend `pid` waits for a lock, 'idle' when its transaction is over."""
    with pg.cursor() as cur:
        cur.execute("SELECT wait_event_type, state FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
    pg.rollback()
    if row is None:
        return None
    return "Lock" if row[0] == "Lock" else row[1]


class _Interleaving:
    """A gate holding one hourly row, a batch that runs into it, then an acknowledgement."""

    def __init__(self, pg, settings):
        self.pg, self.settings = pg, settings
        dsn = admin_dsn(settings.POSTGRES_DB)
        self.gate, self.batch_conn, self.ack_conn = (psycopg2.connect(dsn) for _ in range(3))
        self.failures: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def _run(self, target) -> None:
        def body():
            try:
                target()
            except BaseException as exc:  # surfaced by `finish`
                self.failures.append(exc)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        self.threads.append(thread)

    def hold(self, fp: str) -> None:
        with self.gate.cursor() as cur:
            cur.execute("SELECT 1 FROM error_group_stats WHERE fingerprint = %s FOR UPDATE", (fp,))
            assert cur.rowcount == 1

    def batch(self, words: list[str]) -> None:
        """Write a batch of `words` in HOUR; return once it waits for the gate."""
        bodies = [RawReport(b) for b in _bodies(words)]
        options = parse_options(self.settings)
        self._run(
            lambda: write_batch(self.batch_conn, bodies, options, now=HOUR + timedelta(minutes=30))
        )
        pid = self.batch_conn.get_backend_pid()
        wait_for(lambda: _state(self.pg, pid) == "Lock", 10, "the batch to wait for the gate")

    def acknowledge(self, ids: list[int]) -> None:
        """Acknowledge `ids` in one statement; return once it waits for a lock or is done."""

        def ack():
            with self.ack_conn.cursor() as cur:
                cur.execute(
                    "UPDATE messages SET acknowledged_at = now(), acknowledged_by = 'op' "
                    "WHERE id = ANY(%s)",
                    (ids,),
                )
            self.ack_conn.commit()

        self._run(ack)
        pid = self.ack_conn.get_backend_pid()
        wait_for(
            lambda: _state(self.pg, pid) in ("Lock", "idle") or self.failures,
            10,
            "the acknowledgement to wait or finish",
        )

    def finish(self) -> None:
        """Open the gate; both must complete, neither may fail."""
        try:
            self.gate.commit()
            for thread in self.threads:
                thread.join(30)
            assert not any(t.is_alive() for t in self.threads), "still waiting after 30 s"
        finally:
            for conn in (self.gate, self.batch_conn, self.ack_conn):
                conn.close()
        assert not self.failures, self.failures


def _assert_counts(pg, total: int, acknowledged: int) -> None:
    with pg.cursor() as cur:
        for table in ("error_group_stats", "error_group_stats_daily", "error_group_stats_monthly"):
            cur.execute(f"SELECT sum(count), sum(acknowledged) FROM {table}")  # noqa: S608
            assert cur.fetchone() == (total, acknowledged), table
    pg.rollback()


def test_a_batch_and_an_acknowledgement_of_the_same_hourly_rows_do_not_deadlock(
    app, db, pg, settings
):
    """The deadlock the suite once hit (`DeadlockDetected ... while inserting index tuple in
    relation "error_group_stats"`). The gate holds the second row in key order, so the batch
    stops there holding the first. The acknowledgement updates every row but the gated one:
    taking them in any order but the key order, it locks rows the batch still needs before it
    waits for the first one, and opening the gate closes the cycle."""
    words = [f"word{n}x" for n in range(20)]
    keys = _seed(pg, settings, words)
    run = _Interleaving(pg, settings)
    run.hold(keys[1][0])
    run.batch(words)
    run.acknowledge([mid for fp, mid in keys if fp != keys[1][0]])
    run.finish()
    _assert_counts(pg, 2 * len(words), len(words) - 1)


def test_a_batch_takes_its_rows_before_the_day_lock_of_the_daily_rollup(app, db, pg, settings):
    """A batch with more error_group_stats rows than one statement of execute_values' default
    page (100) upserted them in two statements: the first one's trigger took the day lock of
    error_group_stats_daily before the second took its rows. An acknowledgement of a row of the
    second part then held that row and waited for the day lock, while the batch waited for it."""
    words = [f"group{n}z" for n in range(130)]
    keys = _seed(pg, settings, words)
    run = _Interleaving(pg, settings)
    run.hold(keys[110][0])
    run.batch(words)
    run.acknowledge([keys[120][1]])
    run.finish()
    _assert_counts(pg, 2 * len(words), 1)
