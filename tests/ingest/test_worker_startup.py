"""The worker as users start it (`python -m webapp.processes worker`, Mingle and Gossip on)
completes start-up while reports trickle in, whatever the process's hash seed, then flushes partial
batches within INGEST_FLUSH_MS and consumes its task queue.

Before the report consumer step declared its place among the consumer bootsteps, the order followed
the hash seed: for some seeds it started before Mingle, every arriving report woke Mingle's
reply-collecting loop before its one-second quiet timeout, and start-up never completed (no flush
timer, no task consumer). A preloaded queue alone hides it: the prefetch window fills and the broker
goes quiet. Hence a steady trickle here.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg2
import pytest
from kombu import Connection, Exchange, Producer, Queue

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import wait_for

pytestmark = pytest.mark.slow

#: Seeds 4 and 5 hung on the code before the fix (the consumer step ran before Mingle).
SEEDS = (0, 1, 4, 5)
TRICKLE_PER_SECOND = 10


class Trickle(threading.Thread):
    """Publishes reports at a steady rate until stopped; remembers when each id was sent."""

    def __init__(self, settings, names):
        super().__init__(daemon=True)
        self.settings, self.names = settings, names
        self.sent: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        with Connection(self.settings.broker_url, connect_timeout=5) as conn:
            exchange = Exchange(self.names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
            producer = Producer(conn.channel(), exchange=exchange)
            while not self.stopping.wait(1 / TRICKLE_PER_SECOND):
                self.publish(producer)

    def publish(self, producer) -> None:
        body = report_body()
        report_id = json.loads(body)["id"]
        producer.publish(
            body,
            routing_key=self.names["DASHBOARD_ROUTING_KEY"],
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        self.sent[report_id] = time.monotonic()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def declare(settings, names) -> None:
    with Connection(settings.broker_url) as conn:
        exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
        Queue(
            names["DASHBOARD_QUEUE"],
            exchange,
            routing_key=names["DASHBOARD_ROUTING_KEY"],
            durable=True,
        )(conn.channel()).declare()


def delete(settings, names) -> None:
    with Connection(settings.broker_url) as conn:
        Queue(names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
        Queue(names["CELERY_QUEUE"], channel=conn.channel()).delete()
        Exchange(names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()


def after_now(trickle: Trickle, seconds: float = 1.0) -> list[str]:
    """Ids sent in the last `seconds` (possibly not flushed yet)."""
    now = time.monotonic()
    return [rid for rid, at in list(trickle.sent.items()) if now - at < seconds]


def stored_ids(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT report_id FROM messages")
        rows = {r[0] for r in cur.fetchall()}
    conn.close()
    return rows


def tasks_heartbeat_count(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM heartbeats WHERE name = 'tasks'")
        (n,) = cur.fetchone()
    conn.close()
    return n


@pytest.mark.parametrize("seed", SEEDS)
def test_worker_starts_flushes_and_runs_tasks_under_a_trickle(
    seed, db, app, settings, unique_names, start_worker
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    declare(settings, unique_names)
    trickle = Trickle(settings, unique_names)
    try:
        # Reports already queued, and new ones arriving all through start-up.
        with Connection(settings.broker_url) as conn:
            producer = Producer(
                conn.channel(),
                exchange=Exchange(unique_names["DASHBOARD_EXCHANGE"], type="direct"),
            )
            for _ in range(30):
                trickle.publish(producer)
        trickle.start()
        time.sleep(1)
        worker = start_worker(
            wait=False, PYTHONHASHSEED=str(seed), INGEST_FLUSH_MS="200", **unique_names
        )
        wait_for(
            lambda: " ready." in worker.output() or not worker.alive,
            45,
            f"the worker (PYTHONHASHSEED={seed}) to complete start-up",
        )
        assert worker.alive, worker.output()[-3000:]
        log = worker.output()
        assert log.index("mingle: searching for neighbors") < log.index("consuming reports"), log

        # Partial batches (10/s against a batch of 500) reach the database within
        # INGEST_FLUSH_MS plus a commit: a report sent now is stored well within 2 s.
        wait_for(
            lambda: set(trickle.sent) <= stored_ids(dsn) | set(after_now(trickle)),
            20,
            "every queued report stored",
        )
        time.sleep(0.5)
        probe = dict(trickle.sent)
        newest = max(probe.values())
        wait_for(
            lambda: set(probe) <= stored_ids(dsn), 10, "the newest reports stored", interval=0.02
        )
        latency = time.monotonic() - newest
        assert latency < 2, f"a partial batch took {latency:.2f} s to reach the database"

        # The task queue has a consumer: a task sent now runs within seconds.
        app.extensions["celery"].send_task(
            "tasks.maintenance.tasks_heartbeat", queue=unique_names["CELERY_QUEUE"]
        )
        wait_for(lambda: tasks_heartbeat_count(dsn) == 1, 10, "the task to run")
    finally:
        trickle.stop()
        delete(settings, unique_names)
