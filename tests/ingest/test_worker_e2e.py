"""End to end: a real `celery worker` process consumes real RabbitMQ and writes real PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from kombu import Connection, Exchange, Producer, Queue

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import ROOT, free_port, process_environ, wait_for
from webapp.demo import generate_reports

pytestmark = pytest.mark.slow


def publisher(settings, names):
    conn = Connection(settings.broker_url, connect_timeout=5)
    exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
    producer = Producer(conn.channel(), exchange=exchange)
    return conn, producer


def publish(producer, names, body: bytes) -> None:
    producer.publish(
        body,
        routing_key=names["DASHBOARD_ROUTING_KEY"],
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
    )


def counts(dsn: str) -> tuple[int, int]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM quarantined_reports)"
        )
        result = cur.fetchone()
    conn.close()
    return result


def delete_queue(settings, names):
    with Connection(settings.broker_url) as conn:
        Queue(names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
        Exchange(names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()


MALFORMED = [
    b"not json",
    b'{"id": "x", "task": "celery.backend_cleanup", "kwargs": {}}',
    b'{"id": "y", "task": "dashboard.tasks.log_pacer_message", "kwargs": {"hash": "h"}}',
    b"\xff\xfe",
    b'{"id": "z", "task": "dashboard.tasks.log_pacer_message", "kwargs": {"type": "t", "errored": "no"}}',
]


def test_2000_mixed_reports_with_100_malformed(db, settings, unique_names, start_worker):
    dsn = admin_dsn(settings.POSTGRES_DB)
    worker = start_worker(**unique_names)
    valid = [json.dumps(r).encode() for r in generate_reports(1900, seed=7)]
    bad = [MALFORMED[i % len(MALFORMED)] + (b" " * (i // len(MALFORMED))) for i in range(100)]
    stream = valid[:]
    rng = random.Random(3)
    for body in bad:
        stream.insert(rng.randrange(len(stream) + 1), body)
    conn, producer = publisher(settings, unique_names)
    try:
        for body in stream:
            publish(producer, unique_names, body)
        wait_for(lambda: counts(dsn) == (1900, 100), 90, "1900 messages + 100 quarantined")
        time.sleep(1)  # nothing more arrives
        assert counts(dsn) == (1900, 100)
        assert worker.alive
        with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
            cur.execute("SELECT count(DISTINCT report_id) FROM messages")
            assert cur.fetchone()[0] == 1900
            cur.execute("SELECT count(*) FROM quarantined_reports WHERE reason = ''")
            assert cur.fetchone()[0] == 0
    finally:
        conn.release()
        delete_queue(settings, unique_names)


def test_same_envelope_published_twice_is_stored_once(db, settings, unique_names, start_worker):
    dsn = admin_dsn(settings.POSTGRES_DB)
    start_worker(**unique_names, INGEST_FLUSH_MS="50")
    conn, producer = publisher(settings, unique_names)
    body = report_body(id="published-twice")
    try:
        publish(producer, unique_names, body)
        wait_for(lambda: counts(dsn)[0] == 1, 30, "first copy")
        publish(producer, unique_names, body)  # a later redelivery
        publish(producer, unique_names, report_body())  # and something after it
        wait_for(lambda: counts(dsn)[0] == 2, 30, "the next report")
        with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM messages WHERE report_id = 'published-twice'")
            assert cur.fetchone()[0] == 1
    finally:
        conn.release()
        delete_queue(settings, unique_names)


@pytest.fixture
def private_postgres(tmp_path):
    """A PostgreSQL of our own (so stopping it disturbs nobody), migrated and partitioned."""
    # Not under tmp_path: the `postgres` user must be able to reach the data directory.
    run_dir = Path(os.environ.get("RUN_DIR", ROOT / ".run")) / f"private-pg-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RUN_DIR": str(run_dir), "PG_PORT": str(free_port_below_32768())}
    script = str(ROOT / "scripts" / "services.sh")

    def ctl(command: str) -> None:
        subprocess.run([script, command], env=env, check=True, capture_output=True, timeout=120)  # noqa: S603

    ctl("pg-start")
    db_env = process_environ("pacer-dashboard", POSTGRES_PORT=env["PG_PORT"])
    for args in (["db", "upgrade"], ["partitions", "create"]):
        subprocess.run(  # noqa: S603
            [str(Path(os.sys.executable).parent / "flask"), "--app", "wsgi", *args],
            env=db_env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
    yield {"port": env["PG_PORT"], "ctl": ctl}
    ctl("pg-stop")
    shutil.rmtree(run_dir, ignore_errors=True)


def free_port_below_32768() -> int:
    for _ in range(50):
        port = free_port()
        if port < 32768:
            return port
    return 20000 + os.getpid() % 5000


def test_postgres_down_for_10_seconds_loses_nothing(
    db, settings, unique_names, start_worker, private_postgres
):
    port = private_postgres["port"]
    dsn = admin_dsn("pacer-dashboard").replace(
        f"port={os.environ['POSTGRES_PORT']}", f"port={port}"
    )
    worker = start_worker(**unique_names, POSTGRES_PORT=port, POSTGRES_DB="pacer-dashboard")
    conn, producer = publisher(settings, unique_names)
    bodies = [json.dumps(r).encode() for r in generate_reports(1500, seed=11)]
    done = threading.Event()

    def stream():
        for i, body in enumerate(bodies):
            publish(producer, unique_names, body)
            if i % 50 == 0:
                time.sleep(0.1)  # ~500/s over a few seconds, spanning the outage
        done.set()

    try:
        thread = threading.Thread(target=stream)
        thread.start()
        time.sleep(0.5)
        private_postgres["ctl"]("pg-stop")
        time.sleep(10)
        private_postgres["ctl"]("pg-start")
        thread.join(60)
        assert done.is_set()
        wait_for(lambda: counts(dsn)[0] == 1500, 120, "all 1500 reports after the outage", 0.5)
        time.sleep(1)
        assert counts(dsn) == (1500, 0)
        assert worker.alive
        with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
            cur.execute("SELECT count(DISTINCT report_id) FROM messages")
            assert cur.fetchone()[0] == 1500
        assert "database unavailable" in worker.output()
    finally:
        conn.release()
        delete_queue(settings, unique_names)
