"""Stress: a real worker ingests 20,000 reports (and a second writer fills past hours) while three
operator sessions bulk-acknowledge and un-acknowledge in a loop and `flask rollups rebuild` runs
twice: no statement fails (no deadlock, no serialization error, none in the worker's log), every
report is stored once, and the hourly and daily rollups equal a direct aggregate over `messages`
(RELIABILITY.md, "Rollup rows")."""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from kombu import Connection, Exchange, Producer, Queue

from tests.auth.support import csrf_token
from tests.conftest import admin_dsn
from tests.factories import parse_options, report_body
from tests.processes import ROOT, VENV_BIN, process_environ, wait_for
from tests.reliability.conftest import delete_queue, ready_in_queue
from tests.stats.test_rollups import _assert_daily_consistent, _day, _expected, _snapshot
from webapp.ingest.writer import RawReport, write_batch
from webapp.stats.fingerprint import fingerprint

pytestmark = pytest.mark.slow

REPORTS = 20_000
#: The second writer: HISTORY_BATCHES batches of HISTORY_BATCH reports over the last 30 hours.
HISTORY_BATCHES, HISTORY_BATCH = 40, 50
TYPES = ["dataset-ingestion", "user-sync", "internal-dataset-ingestion"]
INSTRUMENTS = [f"BL{n:02d}" for n in range(1, 9)]
CALLBACKS = [f"callback_func_{w}" for w in ("create", "index", "sync", "move", "check", "tag")]
CAUSES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo"]
#: Lines of a worker log that mean a batch was not committed.
FAILED_BATCH = ("batch write failed", "database unavailable", "deadlock", "could not serialize")


def _report(rng: random.Random) -> bytes:
    """60 % errored, over 3 types x 8 instruments x 60 causes (180 error groups)."""
    mtype, instrument = rng.choice(TYPES), rng.choice(INSTRUMENTS)
    ms = rng.randint(0, 120_000)
    kwargs = {
        "message_type": mtype,
        "object_identifiers": {"instrument": instrument, "investigation": "2022097034"},
        "processing_start": "2026-03-31T10:00:00",
        "processing_end": (datetime(2026, 3, 31, 10) + timedelta(milliseconds=ms)).isoformat(),
    }
    if rng.random() < 0.6:
        cause = rng.choice(CAUSES)
        kwargs.update(
            errored=True,
            error_message={rng.choice(CALLBACKS): f"KeyError: {cause} for dataset mx_{ms}"},
        )
    return report_body(id=str(uuid.uuid4()), **kwargs)


def _fingerprints() -> list[str]:
    return [
        fingerprint(t, {c: f"KeyError: {cause} for dataset mx_1"}).fingerprint
        for t in TYPES
        for c in CALLBACKS
        for cause in CAUSES
    ]


class _ServerErrors(logging.Handler):
    """The exceptions behind the app's 500 pages (webapp.errors logs them), one line each."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        first = str(exc).strip().splitlines()[0] if exc and str(exc).strip() else ""
        self.lines.append(f"{record.getMessage()}: {type(exc).__name__}: {first}")


class _Loop(threading.Thread):
    """Runs `step` until stopped; counts the steps and keeps every exception."""

    def __init__(self, name: str, step, stop: threading.Event, failures: list):
        super().__init__(name=name, daemon=True)
        self.step, self.stop, self.failures, self.count = step, stop, failures, 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.step() is False:
                    return
                self.count += 1
            except BaseException as exc:  # surfaced by the test
                self.failures.append(f"{self.name}: {type(exc).__name__}: {exc}")
                return


def _operator(app, dsn: str, seed: int, fingerprints: list[str]):
    """One operator's session: bulk (un-)acknowledge by instrument, type or error group, and
    (un-)acknowledge single recent messages, at random."""
    rng = random.Random(seed)
    client = app.test_client()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    tokens: list[str] = []

    def step():
        if not tokens:
            # In this thread, where each request has an app context of its own (in the test's
            # thread requests share the test's, and Flask-WTF caches one token in its `g`).
            tokens.append(csrf_token(client))
        token = tokens[0]
        time.sleep(rng.random() * 0.1)  # a short pause: leave the worker some of the CPU
        mode = rng.choice(("acknowledge", "unacknowledge"))
        kind = rng.random()
        if kind < 0.25:
            with conn.cursor() as cur:  # a message of the batches being written right now
                cur.execute("SELECT id FROM messages WHERE errored ORDER BY id DESC LIMIT 200")
                ids = [r[0] for r in cur.fetchall()]
            if not ids:
                time.sleep(0.05)
                return None
            response = client.post(
                f"/messages/{rng.choice(ids)}/{mode}", data={"csrf_token": token}
            )
            assert response.status_code == 302, _error_message(response)
            return None
        if kind < 0.5:
            filters = {"status": "errored", "instrument": rng.choice(INSTRUMENTS)}
        elif kind < 0.7:
            filters = {"status": "errored", "type": rng.choice(TYPES)}
        elif kind < 0.85:
            filters = {"fingerprint": rng.choice(fingerprints)}
        else:
            filters = {
                "status": "errored",
                "type": rng.choice(TYPES),
                "instrument": rng.choice(INSTRUMENTS),
            }
        response = client.post(
            "/actions/acknowledge", data={"csrf_token": token, "mode": mode, **filters}
        )
        assert response.status_code == 200, (filters, _error_message(response))
        return None

    return step, conn


def _error_message(response) -> str:
    text = response.get_data(as_text=True)
    match = re.search(r'class="error-message">(.*?)</p>', text, re.S)
    return f"{response.status_code}: {match.group(1).strip() if match else text[-300:]}"


def _history_writer(dsn: str, settings, start: datetime, written: list[str]):
    """A second writer (the same `write_batch` as the worker): batches into the last 30 hours
    (two or three UTC days, the worker's hour among them), in an order that jumps between hours."""
    rng = random.Random(7)
    conn = psycopg2.connect(dsn)
    offsets = [rng.randint(0, 30) for _ in range(HISTORY_BATCHES)]
    state = {"n": 0}

    def step():
        n = state["n"]
        if n == HISTORY_BATCHES:
            return False
        state["n"] += 1
        bodies = [_report(rng) for _ in range(HISTORY_BATCH)]
        now = start - timedelta(hours=offsets[n], minutes=rng.randint(0, 59))
        result = write_batch(conn, [RawReport(b) for b in bodies], parse_options(settings), now=now)
        assert result.stored == HISTORY_BATCH, result
        written.extend(json.loads(b)["id"] for b in bodies)
        return None

    return step, conn


def _rebuilder(test_db_name: str, dsn: str, done: list[str]):
    """`flask rollups rebuild --since <3 h ago>` (a real CLI process) when the worker has stored
    a third and two thirds of the reports: hours that batches and operators are writing."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    thresholds = [REPORTS // 3, 2 * REPORTS // 3]

    def step():
        if len(done) == len(thresholds):
            return False
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM messages")
            if cur.fetchone()[0] < thresholds[len(done)]:
                time.sleep(0.2)
                return None
        since = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        run = subprocess.run(  # noqa: S603
            [str(VENV_BIN / "flask"), "--app", "wsgi", "rollups", "rebuild", "--since", since],
            env=process_environ(test_db_name),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        done.append(run.stdout)
        return None

    return step, conn


def _publish(url: str, names: dict[str, str], bodies: list[bytes]) -> None:
    """Publish every body, without a confirm per message (which takes over a minute for 20,000
    on a loaded machine): the test checks that every one of them was stored."""
    exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
    queue = Queue(
        names["DASHBOARD_QUEUE"],
        exchange=exchange,
        routing_key=names["DASHBOARD_ROUTING_KEY"],
        durable=True,
    )
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(channel, exchange=exchange)
        for body in bodies:
            producer.publish(
                body,
                routing_key=names["DASHBOARD_ROUTING_KEY"],
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )


def _deadlocks(pg) -> int:
    with pg.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        value = cur.fetchone()[0]
    pg.rollback()
    return value


def test_worker_acknowledgements_and_rebuild_never_deadlock_and_rollups_stay_exact(
    app, db, pg, settings, test_db_name, unique_names, start_worker
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    t0 = time.monotonic()
    rng = random.Random(2026)
    bodies = [_report(rng) for _ in range(REPORTS)]
    published = {json.loads(b)["id"] for b in bodies}
    deadlocks_before = _deadlocks(pg)

    stop = threading.Event()
    failures: list[str] = []
    history: list[str] = []
    rebuilds: list[str] = []
    connections = []
    loops = []
    for name, (step, conn) in [
        ("history-writer", _history_writer(dsn, settings, datetime.now(UTC), history)),
        ("rebuilder", _rebuilder(test_db_name, dsn, rebuilds)),
        *((f"operator-{n}", _operator(app, dsn, n, _fingerprints())) for n in (1, 2, 3)),
    ]:
        connections.append(conn)
        loops.append(_Loop(name, step, stop, failures))
    operators = loops[2:]
    worker = None
    server_errors = _ServerErrors()
    errors_logger = logging.getLogger("webapp.errors")
    # Alembic's fileConfig (the session's `flask db upgrade`) disabled the loggers that existed.
    errors_logger_disabled, errors_logger.disabled = errors_logger.disabled, False
    errors_logger.addHandler(server_errors)
    try:
        # Batches of 500 (the default), each with over 100 error_group_stats rows. The worker
        # starts up (seconds) while the reports are published.
        started = time.monotonic()
        worker = start_worker("stress", wait=False, INGEST_BATCH_SIZE="500", **unique_names)
        _publish(settings.broker_url, unique_names, bodies)
        for loop in loops:
            loop.start()

        def stored() -> int:
            with pg.cursor() as cur:
                cur.execute("SELECT count(*) FROM messages")
                count = cur.fetchone()[0]
            pg.rollback()
            assert not failures, (failures, server_errors.lines[-3:])
            assert worker.alive, worker.output()[-3000:]
            return count

        total = REPORTS + HISTORY_BATCHES * HISTORY_BATCH
        wait_for(lambda: stored() >= total, 120, f"{total} messages stored", 0.5)
        ingest_seconds = time.monotonic() - started
        wait_for(lambda: len(rebuilds) == 2 or failures, 60, "the rebuilds")
        # The operators go on for a moment on the complete data, then stop.
        time.sleep(0.5)
        stop.set()
        for loop in loops:
            loop.join(60)
        assert not any(loop.is_alive() for loop in loops)
        wait_for(
            lambda: ready_in_queue(settings.broker_url, unique_names["DASHBOARD_QUEUE"])[0] == 0,
            30,
            "the queue to be empty",
        )
    finally:
        stop.set()
        errors_logger.removeHandler(server_errors)
        errors_logger.disabled = errors_logger_disabled
        if worker is not None:
            worker.stop()
        for conn in connections:
            conn.close()
        delete_queue(settings.broker_url, unique_names)

    # No statement failed: not in the operators' sessions or the second writer, not in the
    # worker (a failed batch is logged and retried, which would hide it from the counts).
    assert not failures, (failures, server_errors.lines[-3:])
    assert not server_errors.lines, server_errors.lines[:3]
    log = worker.output()
    failed_batches = [line for line in log.splitlines() if any(s in line for s in FAILED_BATCH)]
    assert not failed_batches, failed_batches[:5]
    assert len(rebuilds) == 2 and all("rebuilt since" in r for r in rebuilds), rebuilds
    actions = [loop.count for loop in operators]
    assert sum(actions) >= 30, f"only {actions} operator actions: the stress did not stress"
    print(  # noqa: T201 - the figures of the run (pytest -s)
        f"\nstress: {REPORTS} worker + {len(history)} writer reports stored in "
        f"{ingest_seconds:.1f} s from the worker's start, operator actions {actions}, 2 rebuilds, "
        f"{time.monotonic() - t0:.1f} s in all"
    )

    # Every report stored exactly once.
    with pg.cursor() as cur:
        cur.execute("SELECT report_id, count(*) FROM messages GROUP BY 1 HAVING count(*) > 1")
        assert cur.fetchall() == []
        cur.execute("SELECT report_id FROM messages")
        assert {r[0] for r in cur.fetchall()} == published | set(history)
        cur.execute("SELECT count(*) FROM messages WHERE acknowledged_at IS NOT NULL")
        acknowledged = cur.fetchone()[0]
    pg.rollback()
    assert acknowledged > 0

    # Hourly rollups, error groups and daily rollups equal the direct aggregate.
    exp_stats, exp_groups, exp_fp = _expected(pg)
    stats, groups, per_fp = _snapshot(pg)
    assert stats == exp_stats
    assert {k: v[:5] for k, v in groups.items()} == exp_groups
    assert {k: v[:3] for k, v in per_fp.items()} == exp_fp
    daily = _assert_daily_consistent(pg, exp_stats)
    exp_daily: dict = defaultdict(lambda: [0, 0])
    for (fp, bucket, mtype, instrument), (n, acked, *_) in exp_groups.items():
        c = exp_daily[(fp, _day(bucket), mtype, instrument)]
        c[0], c[1] = c[0] + n, c[1] + acked
    assert {k: v[:2] for k, v in daily[1].items()} == {k: tuple(v) for k, v in exp_daily.items()}
    assert len({_day(k[0]) for k in stats}) >= 2  # the rollups span days and many hours
    assert len(stats) > 100
    # PostgreSQL's own count (a backend reports it within seconds; a supplementary check).
    assert _deadlocks(pg) == deadlocks_before
