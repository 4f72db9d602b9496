"""Fixtures for the SDK tests: a real RabbitMQ from RMQ_* (no mocks), unique names, cleanup.

The broker comes from the environment (`set -a; . .run/env` or the shared tests/conftest.py set-up).
Every test uses its own exchanges and queues (uuid suffix) and deletes them at the end.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Queue

from pacer import BrokerSettings, PACERWorker, Publisher

READY_TIMEOUT = 15.0


@pytest.fixture(scope="session")
def rmq() -> BrokerSettings:
    """Broker settings from RMQ_*; a missing RMQ_HOST fails the test run with instructions."""
    if not os.environ.get("RMQ_HOST"):
        pytest.fail(
            "RMQ_HOST is not set: start a broker (scripts/services.sh start) and export its "
            "variables (set -a; . .run/env; set +a) before running tests/sdk",
            pytrace=False,
        )
    return BrokerSettings.from_env()


@pytest.fixture
def connection(rmq: BrokerSettings) -> Iterator[Connection]:
    conn = rmq.connection()
    conn.ensure_connection(max_retries=3)
    yield conn
    conn.release()


class Names:
    """Unique names for one test, remembered for deletion at teardown."""

    def __init__(self) -> None:
        self.suffix = f"-{uuid.uuid4().hex[:10]}"
        self.exchanges: list[str] = []
        self.queues: list[str] = []

    def exchange(self, base: str) -> str:
        name = f"test-{base}{self.suffix}"
        self.exchanges.append(name)
        return name

    def queue(self, base: str) -> str:
        name = f"test-{base}{self.suffix}"
        self.queues.append(name)
        return name


@pytest.fixture
def names(connection: Connection) -> Iterator[Names]:
    created = Names()
    yield created
    channel = connection.channel()
    try:
        for name in created.queues:
            Queue(name, channel=channel).delete()
        for name in created.exchanges:
            Exchange(name, channel=channel).delete()
    finally:
        channel.close()


class ReportSink:
    """A private report exchange + queue standing in for the dashboard."""

    def __init__(self, connection: Connection, names: Names):
        self.exchange = names.exchange("dashboard-logging-exchange")
        self.routing_key = "message.logging"
        exchange = Exchange(self.exchange, type="direct", durable=True)
        self.queue = Queue(
            names.queue("dashboard-logging"), exchange=exchange, routing_key=self.routing_key
        )
        self.simple = connection.SimpleQueue(self.queue)
        self.messages: list = []

    def get(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """The next `count` reports (parsed), failing after `timeout` seconds."""
        reports = []
        deadline = time.monotonic() + timeout
        while len(reports) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"only {len(reports)} of {count} reports arrived in {timeout} s")
            try:
                message = self.simple.get(timeout=min(remaining, 1.0))
            except self.simple.Empty:
                continue
            message.ack()
            self.messages.append(message)
            reports.append(json.loads(message.body))
        return reports

    def assert_silent(self, seconds: float = 1.5) -> None:
        """No further report arrives within `seconds`."""
        try:
            message = self.simple.get(timeout=seconds)
        except self.simple.Empty:
            return
        message.ack()
        pytest.fail(f"unexpected report: {message.body[:300]!r}")


@pytest.fixture
def report_sink(connection: Connection, names: Names) -> Iterator[ReportSink]:
    sink = ReportSink(connection, names)
    yield sink
    sink.simple.close()


@pytest.fixture
def publisher(rmq: BrokerSettings) -> Iterator[Publisher]:
    with Publisher(rmq.connection()) as pub:
        yield pub


@pytest.fixture
def run_worker(rmq: BrokerSettings):
    """Start a PACERWorker in a thread: `run_worker(consumers, declare=...)`; stopped at teardown."""
    started: list[tuple[PACERWorker, threading.Thread, list[BaseException]]] = []

    def start(consumers, declare=()) -> PACERWorker:
        worker = PACERWorker(rmq.connection(), consumers, declare=declare)
        errors: list[BaseException] = []

        def target() -> None:
            try:
                worker.run()
            except BaseException as exc:  # surfaced in the test, not swallowed by the thread
                errors.append(exc)
                raise

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        started.append((worker, thread, errors))
        deadline = time.monotonic() + READY_TIMEOUT
        while not worker.ready:
            if errors:
                raise errors[0]
            if time.monotonic() > deadline:
                pytest.fail(f"worker not consuming after {READY_TIMEOUT} s")
            time.sleep(0.05)
        return worker

    yield start
    for worker, thread, errors in started:
        worker.stop()
        thread.join(10)
        worker.close()
        assert not thread.is_alive(), "worker thread did not stop"
        assert not errors, f"worker crashed: {errors[0]!r}"
