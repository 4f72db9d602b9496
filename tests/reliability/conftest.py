"""Fault-injection helpers: private services we may stop, publishers, queue and table counts.

Everything started here is stopped here, by PID (scripts/services.sh pg-stop / rmq-stop act on
the PID files of the private RUN_DIR). The shared services of the checkout are never touched.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg2
import pytest
import requests
from kombu import Connection, Exchange, Producer, Queue

from tests.conftest import admin_dsn
from tests.processes import ROOT, VENV_BIN, process_environ

SERVICES = str(ROOT / "scripts" / "services.sh")
#: Ports the shared services (and other checkouts) use; never picked for private ones.
RESERVED_PORTS = set(range(25400, 25700)) | set(range(26400, 26700))


def free_low_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports below 32768 (RabbitMQ's listeners fail in the ephemeral range)."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 32000)
        if port in RESERVED_PORTS or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def private_run_dir(kind: str) -> Path:
    # Not under pytest's tmp_path: the `postgres` user must be able to reach the data directory.
    return (
        Path(os.environ.get("RUN_DIR", ROOT / ".run"))
        / f"reliability-{kind}-{uuid.uuid4().hex[:8]}"
    )


class PrivateService:
    """One private PostgreSQL or RabbitMQ under its own RUN_DIR, controlled by services.sh."""

    def __init__(self, kind: str, env: dict[str, str], run_dir: Path, port: int):
        self.kind, self.env, self.run_dir, self.port = kind, env, run_dir, port
        self.management_port: int | None = None
        self.db_name = "pacer-dashboard"
        self.dsn = admin_dsn(self.db_name).replace(
            f"port={os.environ['POSTGRES_PORT']}", f"port={port}"
        )

    def ctl(self, command: str) -> None:
        done = subprocess.run(  # noqa: S603
            [SERVICES, command], env=self.env, capture_output=True, timeout=180, check=False
        )
        if done.returncode:
            raise AssertionError(
                f"services.sh {command} failed: {done.stderr.decode(errors='replace')[-2000:]}"
            )

    def start(self) -> None:
        self.ctl(f"{self.kind}-start")

    def stop(self) -> None:
        self.ctl(f"{self.kind}-stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivateService]:
    """A PostgreSQL of our own (stopping it disturbs nobody), migrated and partitioned."""
    run_dir = private_run_dir("pg")
    (port,) = free_low_ports(1)
    env = {**os.environ, "RUN_DIR": str(run_dir), "PG_PORT": str(port), "PG_FAST": "1"}
    service = PrivateService("pg", env, run_dir, port)
    service.start()
    try:
        db_env = process_environ(service.db_name, POSTGRES_PORT=str(port))
        for args in (["db", "upgrade"], ["partitions", "create"]):
            subprocess.run(  # noqa: S603
                [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
                env=db_env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=120,
            )
        yield service
    finally:
        service.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateService]:
    """A RabbitMQ node of our own (with its own epmd) that a test may stop and restart."""
    run_dir = private_run_dir("rmq")
    amqp, mgmt, dist, epmd = free_low_ports(4)
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "RMQ_PORT": str(amqp),
        "RMQ_MGMT_PORT": str(mgmt),
        "RMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
    }
    service = PrivateService("rmq", env, run_dir, amqp)
    service.management_port = mgmt
    service.start()
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# Broker helpers ---------------------------------------------------------------------------------


def broker_url(settings, port: int | None = None) -> str:
    if port is None:
        return settings.broker_url
    return settings.broker_url.replace(f":{settings.RMQ_PORT}/", f":{port}/")


class Publisher:
    """Publishes report bodies to the test's exchange with publisher confirms (so a body the
    broker did not take raises here instead of vanishing unnoticed)."""

    def __init__(self, url: str, names: dict[str, str]):
        self.names = names
        self.conn = Connection(url, connect_timeout=5, transport_options={"confirm_publish": True})
        self.exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
        self.queue = Queue(
            names["DASHBOARD_QUEUE"],
            exchange=self.exchange,
            routing_key=names["DASHBOARD_ROUTING_KEY"],
            durable=True,
        )
        channel = self.conn.channel()
        # Declared here too, so nothing published before the worker's first connection is lost.
        self.queue(channel).declare()
        self.producer = Producer(channel, exchange=self.exchange)
        self.published = 0

    def publish(self, body: bytes) -> None:
        self.producer.publish(
            body,
            routing_key=self.names["DASHBOARD_ROUTING_KEY"],
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        self.published += 1

    def publish_all(self, bodies: Iterable[bytes]) -> None:
        for body in bodies:
            self.publish(body)

    def close(self) -> None:
        try:
            self.conn.release()
        except Exception:  # noqa: BLE001 - the broker may be the thing a test stopped
            pass


def delete_queue(url: str, names: dict[str, str]) -> None:
    with Connection(url, connect_timeout=5) as conn:
        Queue(names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
        Exchange(names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()
        Queue(names["CELERY_QUEUE"], channel=conn.channel()).delete()


def ready_in_queue(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) from a passive queue_declare: exact, but excludes unacked."""
    with Connection(url, connect_timeout=5) as conn:
        _, ready, consumers = conn.default_channel.queue_declare(queue=queue, passive=True)
    return ready, consumers


def management_queue(settings, queue: str, port: int | None = None) -> dict:
    """The management API's view of a queue (ready + unacknowledged, refreshed every ~5 s)."""
    response = requests.get(
        f"http://{settings.RMQ_HOST}:{port or settings.RMQ_MANAGEMENT_PORT}/api/queues/%2F/{queue}",
        auth=(settings.RMQ_USERNAME, settings.RMQ_PASSWORD),
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


# Database helpers -------------------------------------------------------------------------------


def query_one(dsn: str, sql: str, params: tuple = ()) -> tuple:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()
    finally:
        conn.close()


def stored_counts(dsn: str) -> tuple[int, int, int]:
    """(messages, distinct report ids, quarantined)."""
    return query_one(
        dsn,
        "SELECT (SELECT count(*) FROM messages), (SELECT count(DISTINCT report_id) FROM messages), "
        "(SELECT count(*) FROM quarantined_reports)",
    )
