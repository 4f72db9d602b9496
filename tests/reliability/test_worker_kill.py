"""A worker SIGKILLed in the middle of 20,000 reports loses none and stores none twice."""

from __future__ import annotations

import json
import select
import time

import psycopg2
import pytest

from models.messages import NOTIFY_CHANNEL
from tests.conftest import admin_dsn
from tests.processes import wait_for
from tests.reliability.conftest import (
    Publisher,
    delete_queue,
    query_one,
    ready_in_queue,
    stored_counts,
)
from webapp.demo import generate_reports

pytestmark = pytest.mark.slow

TOTAL = 20_000


def wait_for_commit_past(dsn: str, threshold: int, timeout: float) -> int:
    """Block until the worker commits a batch that takes the stored total past `threshold`.

    The writer NOTIFYs inside its transaction, so the notification arrives the moment the batch
    commits, and returns before the consumer thread acks it: killing right then leaves a
    committed batch unacked, which the broker must redeliver and the receipts must dedupe.
    """
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {NOTIFY_CHANNEL}")
            cur.execute("SELECT count(*) FROM messages")
            stored = cur.fetchone()[0]
        deadline = time.monotonic() + timeout
        while stored < threshold:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {stored} stored after {timeout} s")
            if select.select([conn], [], [], 0.5) == ([], [], []):
                continue
            conn.poll()
            while conn.notifies:
                stored += json.loads(conn.notifies.pop(0).payload)["count"]
        return stored
    finally:
        conn.close()


def test_sigkill_mid_ingestion_then_restart_stores_each_report_once(
    db, settings, unique_names, start_worker
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    url = settings.broker_url
    bodies = [json.dumps(r).encode() for r in generate_reports(TOTAL, seed=901)]
    publisher = Publisher(url, unique_names)
    try:
        # A full backlog keeps the worker busy: a batch is always being written (or committed
        # and not yet acked) when the kill lands.
        publisher.publish_all(bodies)
        worker = start_worker("victim", **unique_names)
        at_kill = wait_for_commit_past(dsn, TOTAL // 4, timeout=120)
        worker.kill()  # SIGKILL: no drain, no ack, no goodbye to the broker
        assert not worker.alive
        stored_after_kill = stored_counts(dsn)[0]
        assert stored_after_kill < TOTAL, "the kill came too late to prove anything"
        # The broker requeues the dead consumer's unacked deliveries once it notices the socket
        # closed; anything stored but still back in the queue is a redelivery the dedupe absorbs.
        ready = wait_for(
            lambda: (r := ready_in_queue(url, unique_names["DASHBOARD_QUEUE"]))[1] == 0 and r[0],
            30,
            "the dead consumer's deliveries to be requeued",
        )
        redelivered = stored_after_kill + ready - TOTAL
        print(f"killed at {at_kill} stored; {redelivered} stored-but-unacked will be redelivered")
        assert stored_after_kill + ready >= TOTAL, "reports were acked before they were stored"

        restarted = start_worker("restarted", **unique_names)
        wait_for(lambda: stored_counts(dsn)[0] >= TOTAL, 180, f"{TOTAL} stored", 0.5)
        # Drained: nothing ready, nothing unacked waiting to be redelivered.
        wait_for(
            lambda: ready_in_queue(url, unique_names["DASHBOARD_QUEUE"])[0] == 0, 30, "empty queue"
        )
        time.sleep(1.5)  # a late duplicate would land within the flush interval
        messages, distinct, quarantined = stored_counts(dsn)
        assert (messages, distinct, quarantined) == (TOTAL, TOTAL, 0)
        assert query_one(dsn, "SELECT count(*) FROM report_receipts")[0] == TOTAL
        expected_ids = {json.loads(b)["id"] for b in bodies}
        stored_ids = {
            r[0] for r in _all(dsn, "SELECT report_id FROM messages")
        }  # the very reports we published
        assert stored_ids == expected_ids
        assert restarted.alive
    finally:
        publisher.close()
        delete_queue(url, unique_names)


def _all(dsn: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()
