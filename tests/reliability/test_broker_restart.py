"""RabbitMQ restarted during ingestion: the worker reconnects by itself, nothing lost or doubled."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import admin_dsn
from tests.processes import wait_for
from tests.reliability.conftest import Publisher, broker_url, ready_in_queue, stored_counts
from webapp.demo import generate_reports

pytestmark = pytest.mark.slow

BEFORE, AFTER = 8000, 2000


def test_broker_restart_during_ingestion(
    db, settings, unique_names, start_worker, private_rabbitmq
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    url = broker_url(settings, private_rabbitmq.port)
    bodies = [json.dumps(r).encode() for r in generate_reports(BEFORE + AFTER, seed=902)]

    publisher = Publisher(url, unique_names)
    publisher.publish_all(bodies[:BEFORE])  # confirmed: on the broker's disk, durable queue
    publisher.close()
    worker = start_worker("reconnecting", RMQ_PORT=str(private_rabbitmq.port), **unique_names)
    wait_for(lambda: stored_counts(dsn)[0] >= BEFORE // 4, 60, "ingestion under way", 0.05)

    private_rabbitmq.stop()  # mid-way through the backlog: batches in flight lose their channel
    at_stop = stored_counts(dsn)[0]
    assert at_stop < BEFORE, "the broker stopped too late to prove anything"
    time.sleep(2)
    assert worker.alive, "the worker died when the broker went away"
    private_rabbitmq.start()

    publisher = Publisher(url, unique_names)  # producers keep publishing after the restart
    try:
        publisher.publish_all(bodies[BEFORE:])
        wait_for(
            lambda: stored_counts(dsn)[0] >= BEFORE + AFTER,
            150,
            f"all {BEFORE + AFTER} reports after the broker restart",
            0.5,
        )
        wait_for(lambda: ready_in_queue(url, unique_names["DASHBOARD_QUEUE"])[0] == 0, 30, "empty")
        time.sleep(1.5)  # redelivered duplicates would land within a flush interval
        assert stored_counts(dsn) == (BEFORE + AFTER, BEFORE + AFTER, 0)
        stored_ids = {r[0] for r in _ids(dsn)}
        assert stored_ids == {json.loads(b)["id"] for b in bodies}
        # The same process reconnected (no supervisor restarted it) and consumes again.
        assert worker.alive
        log = worker.output()
        assert log.count("consuming reports") >= 2, log[-3000:]
        assert ready_in_queue(url, unique_names["DASHBOARD_QUEUE"])[1] == 1
    finally:
        publisher.close()


def _ids(dsn: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT report_id FROM messages")
            return cur.fetchall()
    finally:
        conn.close()
