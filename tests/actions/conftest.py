"""Fixtures of the actions tests: a private exchange to re-ingest to."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue


@pytest.fixture
def broker(settings, reingest_allowed):
    """A private direct exchange with one queue bound for `dataset.ingest` (deleted after),
    on the re-ingest allow-list."""
    suffix = uuid.uuid4().hex[:8]
    exchange = Exchange(f"test-reingest-{suffix}", type="direct", durable=False)
    reingest_allowed(exchange.name)
    queue = Queue(
        f"test-reingest-q-{suffix}", exchange=exchange, routing_key="dataset.ingest", durable=False
    )
    with Connection(settings.broker_url) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        queue(channel).declare()
        yield conn, exchange, queue
        queue(channel).delete()
        exchange(channel).delete()
