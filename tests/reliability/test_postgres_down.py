"""PostgreSQL stopped for 10 s: nothing acked before it is stored, /healthz says so, no crash loop."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.processes import wait_for
from tests.reliability.conftest import (
    Publisher,
    management_queue,
    query_one,
    ready_in_queue,
    stored_counts,
)
from webapp.demo import generate_reports

pytestmark = pytest.mark.slow

BEFORE, DURING = 4000, 1500
TOTAL = BEFORE + DURING
OUTAGE_SECONDS = 10


def health(base: str) -> tuple[int, dict]:
    response = requests.get(f"{base}/healthz", timeout=15)
    return response.status_code, response.json()


def test_postgres_down_nothing_acked_before_stored_and_health_recovers(
    db, settings, unique_names, start_worker, live_server, private_postgres
):
    port = str(private_postgres.port)
    dsn = private_postgres.dsn
    queue = unique_names["DASHBOARD_QUEUE"]
    bodies = [json.dumps(r).encode() for r in generate_reports(TOTAL, seed=903)]
    db_env = {"POSTGRES_PORT": port, "POSTGRES_DB": private_postgres.db_name, **unique_names}

    publisher = Publisher(settings.broker_url, unique_names)
    base = live_server(**db_env)
    worker = start_worker("patient", **db_env)
    status, body = health(base)
    assert status == 200, body
    assert body["database"]["ok"]

    try:
        feeder = threading.Thread(target=publisher.publish_all, args=(bodies[:BEFORE],))
        feeder.start()
        wait_for(lambda: stored_counts(dsn)[0] >= 500, 60, "ingestion under way", 0.05)
        private_postgres.stop()
        stopped_at = datetime.now(UTC)
        outage_started = time.monotonic()
        feeder.join(60)
        publisher.publish_all(bodies[BEFORE:])  # producers keep publishing during the outage
        # Sampling starts once every report is published: on a loaded machine publishing can
        # take longer than the outage itself, which once left no time to sample at all.
        published_at = time.monotonic()

        status, body = wait_for(
            lambda: (h := health(base))[0] == 503 and h, 10, "/healthz to report the outage"
        )
        assert body["status"] == "down"
        assert not body["database"]["ok"]
        assert "database unreachable" in body["problems"]

        # Nothing can be stored now, so the queue must hold every report not stored before the
        # stop: ready + unacknowledged (held by the worker) + stored == published. The
        # management statistics lag (emitted every ~5 s): a sample counts once its ready figure
        # matches the exact one from a passive declare, and the outage lasts until we have two
        # (10 s, longer only if the statistics are late).
        samples: list[tuple[int, int]] = []
        deadline = published_at + 2 * OUTAGE_SECONDS
        while time.monotonic() < deadline:
            exact_ready = ready_in_queue(settings.broker_url, queue)[0]
            q = management_queue(settings, queue)
            if q.get("messages_ready") == exact_ready and exact_ready:
                samples.append((q["messages_ready"], q["messages_unacknowledged"]))
            if len(samples) >= 2 and time.monotonic() >= outage_started + OUTAGE_SECONDS:
                break
            time.sleep(0.5)
        assert samples, "the management API never caught up during the outage"
        assert worker.alive, "the worker died while the database was down"
        assert health(base)[0] == 503
        private_postgres.start()

        # Rows written before the stop carry an earlier received_at than anything written after.
        stored_before_stop = query_one(
            dsn, "SELECT count(*) FROM messages WHERE received_at < %s", (stopped_at,)
        )[0]
        assert 500 <= stored_before_stop < TOTAL
        for ready, unacked in samples:
            assert ready + unacked + stored_before_stop == TOTAL, (
                f"{TOTAL - stored_before_stop - ready - unacked} reports were acked while the "
                f"database was down (samples {samples}, stored before the stop "
                f"{stored_before_stop})"
            )
        assert any(unacked for _, unacked in samples), "the worker held no deliveries"

        status, body = wait_for(
            lambda: (h := health(base))[0] == 200 and h, 30, "/healthz to recover"
        )
        assert body["database"]["ok"]
        wait_for(lambda: stored_counts(dsn)[0] >= TOTAL, 120, f"all {TOTAL} stored", 0.5)
        wait_for(lambda: ready_in_queue(settings.broker_url, queue)[0] == 0, 30, "empty queue")
        time.sleep(1.5)  # a duplicate would land within the flush interval
        assert stored_counts(dsn) == (TOTAL, TOTAL, 0)

        # No crash loop: the same consumer waited with exponential backoff (0.5 s doubling:
        # a handful of attempts in 10 s, not one per delivery or per timer tick).
        assert worker.alive
        log = worker.output()
        assert log.count("consuming reports") == 1, log[-3000:]
        attempts = log.count("database unavailable")
        assert 1 <= attempts <= 8, f"{attempts} retries during a {OUTAGE_SECONDS} s outage"
        assert "ingestion resumed" in log
        # /healthz sees the ingestion heartbeat again.
        last = health(base)[1]["database"]["last_ingest_at"]
        assert last is not None
        assert datetime.fromisoformat(last) > stopped_at
    finally:
        publisher.close()
