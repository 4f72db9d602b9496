"""The worker's report consumer hands py-amqp's Message to the ingestor, without kombu's wrapper,
and the ingestor reads from it exactly what it read from kombu's Message (tasks/ingest.py
`RawConsumer`, `_raw_report`, `_ack_through`)."""

from __future__ import annotations

import zlib

import amqp
import pytest
from kombu.transport import pyamqp

from tasks.ingest import RawConsumer, _ack_through, _raw_report

pytestmark = pytest.mark.unit


class _Channel:
    """py-amqp's channel as far as kombu's Message and the ack use it."""

    Message = pyamqp.Message
    no_ack_consumers = None
    message_to_python = pyamqp.Channel.message_to_python

    def __init__(self):
        self.acks = []

    def basic_ack(self, delivery_tag, multiple=False):
        self.acks.append((delivery_tag, multiple))


def _delivery(channel, body, **properties) -> amqp.Message:
    message = amqp.Message(body, **properties)
    message.channel = channel
    message.delivery_info = {
        "consumer_tag": "c1",
        "delivery_tag": 7,
        "redelivered": False,
        "exchange": "dashboard",
        "routing_key": "message.logging",
    }
    return message


def _consumer(channel, received) -> RawConsumer:
    consumer = RawConsumer.__new__(RawConsumer)
    consumer.channel, consumer.accept, consumer.on_decode_error = channel, None, None
    consumer.on_message = received.append
    return consumer


@pytest.mark.parametrize(
    "properties",
    [
        {"content_type": "application/json", "application_headers": {"x": 1, "y": [b"z"]}},
        {"content_type": "application/json", "content_encoding": "utf-8"},
        {},
    ],
)
def test_the_raw_message_reads_as_kombus_would(properties):
    channel, received = _Channel(), []
    message = _delivery(channel, b'{"id": "r1"}', **properties)
    _consumer(channel, received)._receive_callback(message)
    assert received == [message]  # no wrapper
    kombu_message = channel.message_to_python(message)
    assert _raw_report(message) == _raw_report(kombu_message)
    _ack_through(message)
    _ack_through(kombu_message)
    assert channel.acks == [(7, True), (7, True)]


def test_a_compressed_delivery_still_goes_through_kombu():
    channel, received = _Channel(), []
    body = b'{"id": "r1"}'
    message = _delivery(
        channel,
        zlib.compress(body),
        content_type="application/json",
        application_headers={"compression": "application/x-gzip"},
    )
    _consumer(channel, received)._receive_callback(message)
    assert len(received) == 1 and received[0] is not message
    assert _raw_report(received[0]).body == body  # decompressed, as before
