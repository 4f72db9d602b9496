"""Re-ingestion against the real RabbitMQ: what reaches the queue, and what is refused."""

from __future__ import annotations

import json

import pytest

from tests.auth.support import csrf_token, login
from tests.factories import store_message


def get_one(conn, queue, timeout=5.0):
    simple = conn.SimpleQueue(queue, no_ack=True)
    try:
        return simple.get(block=True, timeout=timeout)
    finally:
        simple.close()


def audit_rows(db, message_id):
    from models import AuditLog

    db.session.expire_all()
    return (
        db.session.query(AuditLog)
        .filter(AuditLog.message_ids.contains([message_id]))
        .order_by(AuditLog.id)
        .all()
    )


def test_reingest_publishes_edited_payload_to_original_exchange(app, db, client, broker):
    conn, exchange, queue = broker
    message_id = store_message(
        app, db, exchange_name=exchange.name, routing_key="dataset.ingest", errored=True
    )
    page = client.get(f"/messages/{message_id}/reingest")
    assert page.status_code == 200
    assert "dataset.ingest" in page.get_data(as_text=True)

    edited = '{"investigation": "2022097034", "dataset": "mx_01", "retry": true}'
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": csrf_token(client), "payload": edited, "routing_key": "dataset.ingest"},
    )
    assert response.status_code == 200
    assert 'data-outcome="ok"' in response.get_data(as_text=True)

    delivered = get_one(conn, queue)
    assert delivered.body == edited  # kombu decodes by content_encoding
    assert delivered.content_encoding == "utf-8"
    assert delivered.content_type == "application/json"
    assert delivered.headers["x-dashboard-reingest-of"] == str(message_id)
    assert delivered.properties["delivery_mode"] == 2
    assert delivered.delivery_info["routing_key"] == "dataset.ingest"
    assert delivered.delivery_info["exchange"] == exchange.name

    (row,) = audit_rows(db, message_id)
    assert (row.action, row.outcome, row.actor) == ("reingest", "ok", "anonymous (auth disabled)")
    assert row.detail["edited"] is True
    assert row.target == f"{exchange.name} / dataset.ingest"


def test_reingest_xml_keeps_raw_payload_and_content_type(app, db, client, broker):
    conn, exchange, queue = broker
    xml = "<dataset><name>mx_02</name></dataset>"
    message_id = store_message(
        app, db, exchange_name=exchange.name, payload=xml, payload_format="xml"
    )
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": csrf_token(client), "payload": xml, "routing_key": "dataset.ingest"},
    )
    assert response.status_code == 200
    delivered = get_one(conn, queue)
    assert delivered.body == xml
    assert delivered.content_type == "application/xml"


def test_unroutable_reingest_is_an_error_shown_and_audited(app, db, client, broker):
    conn, exchange, queue = broker
    # `other.key` was seen on this exchange, but no queue is bound for it.
    store_message(app, db, exchange_name=exchange.name, routing_key="other.key")
    message_id = store_message(app, db, exchange_name=exchange.name, routing_key="dataset.ingest")
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": csrf_token(client),
            "payload": '{"investigation": "2022097034"}',
            "routing_key": "other.key",
        },
    )
    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert 'data-outcome="error"' in text
    assert "unroutable" in text
    (row,) = audit_rows(db, message_id)
    assert (row.action, row.outcome) == ("reingest", "error")
    assert "unroutable" in row.detail["error"]
    with pytest.raises(Exception):  # noqa: B017 - nothing arrived on the bound queue
        get_one(conn, queue, timeout=0.5)


def test_malformed_json_and_unknown_routing_key_are_refused(app, db, client, broker):
    conn, exchange, queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name)
    token = csrf_token(client)
    bad_json = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": token, "payload": '{"a": ', "routing_key": "dataset.ingest"},
    )
    assert bad_json.status_code == 400
    assert "not well-formed JSON" in bad_json.get_data(as_text=True)
    bad_key = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": token, "payload": "{}", "routing_key": "never.seen"},
    )
    assert bad_key.status_code == 400
    assert [r.outcome for r in audit_rows(db, message_id)] == ["error", "error"]
    with pytest.raises(Exception):  # noqa: B017
        get_one(conn, queue, timeout=0.5)


def test_malicious_xml_is_refused(app, db, client, broker):
    _conn, exchange, _queue = broker
    message_id = store_message(
        app, db, exchange_name=exchange.name, payload="<a>1</a>", payload_format="xml"
    )
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><a>&e;</a>'
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": csrf_token(client), "payload": bomb, "routing_key": "dataset.ingest"},
    )
    assert response.status_code == 400
    assert "not well-formed XML" in response.get_data(as_text=True)


def test_reingest_without_permission_is_refused_and_audited(
    app, db, client, broker, auth_enabled, make_group, make_user
):
    conn, exchange, queue = broker
    message_id = store_message(
        app, db, exchange_name=exchange.name, message_type="dataset-ingestion"
    )
    # Sees the message and may acknowledge, but may re-ingest only user-sync messages.
    group = make_group(
        "ops", can_acknowledge=True, can_reingest=True, reingest_message_types=["user-sync"]
    )
    login(client, make_user("operator", [group]))
    assert client.get(f"/messages/{message_id}/reingest").status_code == 403
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": csrf_token(client), "payload": "{}", "routing_key": "dataset.ingest"},
    )
    assert response.status_code == 403
    (row,) = audit_rows(db, message_id)
    assert (row.action, row.outcome, row.actor) == ("reingest", "denied", "operator@example.org")
    with pytest.raises(Exception):  # noqa: B017
        get_one(conn, queue, timeout=0.5)


def test_message_page_partial_shows_history(app, db, client, broker):
    """The partial the message page includes lists every attempt with its outcome."""
    from flask import render_template

    from models import Message

    _conn, exchange, _queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name, errored=True)
    token = csrf_token(client)
    client.post(f"/messages/{message_id}/acknowledge", data={"csrf_token": token})
    client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": token, "payload": "{}", "routing_key": "dataset.ingest"},
    )
    with app.test_request_context(f"/messages/{message_id}"):
        message = db.session.query(Message).filter_by(id=message_id).one()
        html = render_template("actions/_message_actions.html", message=message)
    assert "Un-acknowledge" in html
    assert "reingest" in html and "acknowledge" in html
    assert json.dumps("ok")[1:-1] in html
