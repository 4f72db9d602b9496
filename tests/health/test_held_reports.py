"""What a worker's heartbeat says it holds: every delivery from arrival to ack, counted from the
heartbeat thread while the consumer thread is busy or stuck (ReportIngestor.held)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import psycopg2
import pytest

from tasks.ingest import ReportIngestor
from tests.factories import report_body
from tests.processes import wait_for
from webapp.config import Settings

pytestmark = pytest.mark.unit


class FakeMessage:
    """The parts of a kombu Message the ingestor uses; records its acks."""

    def __init__(self, acks: list):
        self.body = report_body()
        self.content_type = "application/json"
        self.headers = {}
        self.delivery_info = {"routing_key": "message.logging"}
        self._acks = acks

    def ack(self, multiple: bool = False) -> None:
        self._acks.append((self, multiple))


class GatedIngestor(ReportIngestor):
    """Writes nothing: each batch waits for the gate, then succeeds or fails as told."""

    def __init__(self):
        settings = Settings.from_env(
            environ={"RMQ_HOST": "localhost"},
            ENVIRONMENT="testing",
            DISABLED_AUTH=True,
            INGEST_BATCH_SIZE=3,
            INGEST_FLUSH_MS=10,
        )
        super().__init__(settings, connect=lambda: None)
        self.gate = threading.Event()
        self.fail = False

    def write(self, prepared):
        assert self.gate.wait(10)
        if self.fail:
            raise psycopg2.OperationalError("database went away")
        return SimpleNamespace(stored=len(prepared.raws), duplicates=0, quarantined=0, seconds=0.01)


def drive(ingestor: ReportIngestor, until, timeout: float = 5.0):
    """Run the consumer thread's timer until `until()` holds."""

    def tick():
        ingestor.tick()
        return until()

    return wait_for(tick, timeout, "the ingestor", 0.005)


def test_held_counts_every_delivery_until_its_batch_is_acked():
    acks: list = []
    ingestor = GatedIngestor()
    assert ingestor.held()["held_unacked"] == 0
    assert ingestor.held()["oldest_held_seconds"] is None
    try:
        for _ in range(7):
            ingestor.on_message(FakeMessage(acks))
        time.sleep(0.2)
        drive(ingestor, lambda: ingestor.in_flight == 3)  # 3 + 3 + a flushed partial 1
        held = ingestor.held()
        assert held["held_unacked"] == 7
        assert held["held_in_flight"] == 7 and held["held_pending"] == 0
        assert held["oldest_held_seconds"] >= 0.2

        ingestor.gate.set()
        drive(ingestor, lambda: ingestor.in_flight == 0)
        assert ingestor.held() == {
            "held_unacked": 0,
            "held_pending": 0,
            "held_retry": 0,
            "held_in_flight": 0,
            "oldest_held_seconds": None,
            "write_failures": 0,
        }
        assert len(acks) == 3 and all(multiple for _, multiple in acks)
        assert ingestor.last_batch["size"] == 1 and ingestor.totals["stored"] == 7
    finally:
        ingestor.gate.set()
        ingestor.close()


def test_held_includes_batches_waiting_for_a_retry_and_the_failures():
    acks: list = []
    ingestor = GatedIngestor()
    ingestor.fail = True
    ingestor.gate.set()
    try:
        for _ in range(3):
            ingestor.on_message(FakeMessage(acks))
        drive(ingestor, lambda: ingestor.retry and ingestor.in_flight == 0)
        held = ingestor.held()
        assert held["held_unacked"] == 3 and held["held_retry"] == 3
        assert held["write_failures"] == 1
        assert acks == []
    finally:
        ingestor.close()


def test_drain_forgets_what_the_broker_will_redeliver():
    ingestor = GatedIngestor()
    try:
        ingestor.on_message(FakeMessage([]))
        ingestor.drain(timeout=0.1)
        assert ingestor.held()["held_unacked"] == 0
    finally:
        ingestor.gate.set()
        ingestor.close()


def test_held_is_read_from_another_thread_while_the_consumer_thread_is_stuck():
    """The heartbeat thread reads while nothing runs the consumer thread's timer."""
    acks: list = []
    ingestor = GatedIngestor()
    try:
        for _ in range(2):
            ingestor.on_message(FakeMessage(acks))
        seen: list[dict] = []
        reader = threading.Thread(target=lambda: seen.append(ingestor.held()))
        time.sleep(0.3)
        reader.start()
        reader.join(5)
        assert seen[0]["held_unacked"] == 2
        assert seen[0]["oldest_held_seconds"] >= 0.3
    finally:
        ingestor.gate.set()
        ingestor.close()
