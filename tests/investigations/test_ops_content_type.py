"""Investigation-ops requests PACER can report on (issue 19 §2.2): published as UTF-8 JSON text
with INVESTIGATION_OPS_CONTENT_TYPE (default text/plain), so kombu hands PACER's consumer a str."""

from __future__ import annotations

import dataclasses
import json

import pytest
from kombu import Connection, Consumer

from webapp.config import ConfigError, Settings
from webapp.investigations.services import OpsPublisher

BASE = {"RMQ_HOST": "localhost", "ENVIRONMENT": "testing", "DISABLED_AUTH": "true"}


def consume_like_pacer(broker_url: str, queue) -> list[tuple[object, object]]:
    """(body, message) as a kombu Consumer callback receives them (PACER's consumers)."""
    received: list[tuple[object, object]] = []
    with Connection(broker_url) as conn:
        with Consumer(conn, queues=[queue], callbacks=[lambda b, m: received.append((b, m))]):
            while not received:
                conn.drain_events(timeout=5)
        for _, message in received:
            message.ack()
    return received


def send(settings, *operations: str) -> None:
    publisher = OpsPublisher(settings)
    try:
        publisher.send("INV-1", "7", list(operations))
    finally:
        publisher.close()


def test_default_request_reaches_a_kombu_consumer_as_json_text(check_settings, ops_broker):
    assert check_settings.INVESTIGATION_OPS_CONTENT_TYPE == "text/plain"
    send(check_settings, "mint-proposal", "create-panosc-item")

    ((body, message),) = consume_like_pacer(check_settings.broker_url, ops_broker.queue)

    assert isinstance(body, str)  # a str: PACER acts on it *and* reports it
    assert json.loads(body) == {
        "name": "INV-1",
        "visit_id": "7",
        "operations": ["mint-proposal", "create-panosc-item"],
    }
    assert (message.content_type, message.content_encoding) == ("text/plain", "utf-8")
    assert message.properties["delivery_mode"] == 2


def test_content_type_is_configurable(check_settings, ops_broker):
    settings = dataclasses.replace(
        check_settings, INVESTIGATION_OPS_CONTENT_TYPE="application/json"
    )
    send(settings, "mint-proposal")

    ((body, message),) = consume_like_pacer(settings.broker_url, ops_broker.queue)

    assert message.content_type == "application/json"
    assert body == {"name": "INV-1", "visit_id": "7", "operations": ["mint-proposal"]}


@pytest.mark.parametrize("value", ["", "json", "text/plain; charset=utf-8", "text/ plain"])
def test_bad_content_type_fails_start_up(value):
    with pytest.raises(ConfigError, match="INVESTIGATION_OPS_CONTENT_TYPE"):
        Settings.from_env({**BASE, "INVESTIGATION_OPS_CONTENT_TYPE": value})


def test_requests_need_no_reingest_allow_list_entry(check_settings, ops_broker):
    """The checks publish to INVESTIGATION_OPS_EXCHANGE as the main broker user (SECURITY.md),
    whatever REINGEST_EXCHANGES lists (empty = re-ingest disabled, the checks still work)."""
    settings = dataclasses.replace(check_settings, REINGEST_EXCHANGES=())
    send(settings, "mint-proposal")

    ((body, _),) = consume_like_pacer(settings.broker_url, ops_broker.queue)
    assert json.loads(body)["operations"] == ["mint-proposal"]
