"""Two workers consuming the same queue concurrently store every report exactly once."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.conftest import admin_dsn
from tests.processes import wait_for
from tests.reliability.conftest import Publisher, delete_queue, ready_in_queue, stored_counts
from webapp.demo import generate_reports

pytestmark = pytest.mark.slow

DISTINCT = 5000
WINDOW = 60


def batch_totals(log: str) -> tuple[int, int, int]:
    """(stored, duplicates, quarantined) summed over a worker's batch log lines."""
    totals = [0, 0, 0]
    for match in re.finditer(r"batch: (\d+) stored, (\d+) duplicates, (\d+) quarantined", log):
        for i in range(3):
            totals[i] += int(match.group(i + 1))
    return tuple(totals)


def test_two_workers_same_queue_store_each_report_once(db, settings, unique_names, start_worker):
    dsn = admin_dsn(settings.POSTGRES_DB)
    url = settings.broker_url
    bodies = [json.dumps(r).encode() for r in generate_reports(DISTINCT, seed=904)]
    # Every report is published twice (a producer retry, a redelivery), the second copy close
    # behind the first and in reverse order: the broker deals them round-robin, so the two
    # workers race on the same report ids, in opposite orders, in concurrent transactions.
    stream: list[bytes] = []
    for start in range(0, DISTINCT, WINDOW):
        window = bodies[start : start + WINDOW]
        stream += window + window[::-1]

    # Small batches and prefetch so both workers keep taking turns on the queue.
    tuning = {"INGEST_BATCH_SIZE": "25", "INGEST_FLUSH_MS": "50", **unique_names}
    first = start_worker("first", **tuning)
    second = start_worker("second", **tuning)
    publisher = Publisher(url, unique_names)
    try:
        publisher.publish_all(stream)
        wait_for(lambda: stored_counts(dsn)[0] >= DISTINCT, 120, f"{DISTINCT} stored", 0.5)
        wait_for(lambda: ready_in_queue(url, unique_names["DASHBOARD_QUEUE"])[0] == 0, 30, "empty")

        def settled():
            a, b = batch_totals(first.output()), batch_totals(second.output())
            return sum(a) + sum(b) >= 2 * DISTINCT and (a, b)

        (stored_a, dup_a, bad_a), (stored_b, dup_b, bad_b) = wait_for(
            settled, 30, "every delivery handled"
        )
        time.sleep(0.5)
        assert stored_counts(dsn) == (DISTINCT, DISTINCT, 0)
        assert first.alive and second.alive
        for worker in (first, second):
            # Racing transactions wait for each other; they must not deadlock (which the
            # ingestor can only treat as an outage: hold everything and back off).
            failures = [line for line in worker.output().splitlines() if "unavailable" in line]
            assert not failures, failures
        # Both really worked, and the second copies really reached the writer (not lost
        # upstream): with no failed batch, the batch log lines add up exactly.
        assert stored_a > 0 and stored_b > 0, (stored_a, stored_b)
        assert (stored_a + stored_b, dup_a + dup_b, bad_a + bad_b) == (DISTINCT, DISTINCT, 0)
    finally:
        publisher.close()
        first.stop()  # before the queue goes, or they would fail to re-declare it
        second.stop()
        delete_queue(url, unique_names)
