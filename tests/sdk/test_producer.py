"""Publisher confirms and broker settings against the real RabbitMQ."""

from __future__ import annotations

import json

import pytest
from kombu import Exchange, Queue

from pacer import (
    BrokerSettings,
    ConfigError,
    ExchangeNotFound,
    MessageUnroutable,
    Publisher,
    PublishError,
)


def test_confirmed_publish_is_persistent_and_routed(names, connection, publisher):
    exchange = Exchange(names.exchange("ops"), type="direct", durable=True)
    queue = Queue(names.queue("ops"), exchange=exchange, routing_key="investigation.ops")
    publisher.declare(exchange, queue)

    message_id = publisher.publish(
        {"name": "2022097034", "visit_id": "2022097034-1", "operations": ["doi"]},
        exchange=exchange.name,
        routing_key="investigation.ops",
    )

    with connection.SimpleQueue(queue) as simple:
        message = simple.get(timeout=5)
        message.ack()
    assert message.properties["message_id"] == message_id
    assert message.properties["delivery_mode"] == 2
    assert message.content_type == "application/json"
    assert json.loads(message.body)["operations"] == ["doi"]


def test_unroutable_message_raises_and_publisher_keeps_working(names, publisher):
    exchange = Exchange(names.exchange("nobody-listens"), type="direct", durable=True)
    publisher.declare(exchange)

    with pytest.raises(MessageUnroutable) as excinfo:
        publisher.publish({"a": 1}, exchange=exchange.name, routing_key="no.queue")
    assert excinfo.value.exchange == exchange.name
    assert excinfo.value.routing_key == "no.queue"
    assert "NO_ROUTE" in str(excinfo.value) and "no.queue" in str(excinfo.value)

    # The next (routable) publish is confirmed normally: no stale confirm is left behind.
    queue = Queue(names.queue("late"), exchange=exchange, routing_key="now.bound")
    publisher.declare(queue)
    assert publisher.publish("<a/>", exchange=exchange.name, routing_key="now.bound")


def test_missing_exchange_raises_and_publisher_recovers(names, publisher):
    missing = names.exchange("never-declared")
    with pytest.raises(ExchangeNotFound, match="does not exist"):
        publisher.publish({"a": 1}, exchange=missing, routing_key="x")
    with pytest.raises(PublishError):
        publisher.publish({"a": 1}, exchange=missing, routing_key="x")

    exchange = Exchange(names.exchange("declared"), type="direct", durable=True)
    queue = Queue(names.queue("declared"), exchange=exchange, routing_key="x")
    publisher.declare(exchange, queue)
    assert publisher.publish({"a": 1}, exchange=exchange.name, routing_key="x")


def test_publisher_uses_its_own_confirming_connection(rmq):
    connection = rmq.connection()
    with Publisher(connection) as pub:
        assert pub.connection is not connection
        assert pub.connection.transport_options["confirm_publish"] is True
    assert not connection.transport_options.get("confirm_publish")


def test_broker_url_quotes_every_part(rmq):
    settings = BrokerSettings(
        host="rabbit.example.org",
        port=5671,
        protocol="amqps",
        username="pacer@facility",
        password="pa/ss@w:rd%1",
        vhost="/",
    )
    assert settings.url == (
        "amqps://pacer%40facility:pa%2Fss%40w%3Ard%251@rabbit.example.org:5671/%2F"
    )
    parsed = settings.connection()
    assert parsed.userid == "pacer@facility"
    assert parsed.password == "pa/ss@w:rd%1"
    assert parsed.virtual_host == "/"
    assert parsed.ssl
    assert "pa/ss" not in repr(settings)


def test_real_password_with_special_characters_connects(rmq):
    # The local broker's password contains / @ : % on purpose (scripts/services.sh).
    with rmq.connection() as conn:
        conn.ensure_connection(max_retries=2)
        assert conn.connected


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "RMQ_HOST"),
        ({"RMQ_HOST": "h", "RMQ_PORT": "amqp"}, "RMQ_PORT"),
        ({"RMQ_HOST": "h", "RMQ_PORT": "70000"}, "RMQ_PORT"),
        ({"RMQ_HOST": "h", "RMQ_PROTOCOL": "http"}, "RMQ_PROTOCOL"),
    ],
)
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        BrokerSettings.from_env(environ)


def test_settings_defaults():
    settings = BrokerSettings.from_env({"RMQ_HOST": "rabbit"})
    assert (settings.protocol, settings.port, settings.username, settings.vhost) == (
        "amqp",
        5672,
        "pacer-dashboard",
        "/",
    )
