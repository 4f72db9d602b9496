"""Re-ingest of legacy reports (issue 19 §2.4): a report without exchange gets a target chosen from
the re-ingest allow-list (validated server-side, audited); a report without the original AMQP
headers (the SDK's `headers` extra) is re-ingested with a warning."""

from __future__ import annotations

import json
import uuid
from queue import Empty

import pytest

from tests.auth.support import csrf_token
from tests.factories import report_body, store_message

from .test_reingest import audit_rows, get_one

TASK = "dashboard.tasks.log_pacer_message"


def seed_raw(app, db, body: bytes) -> int:
    from webapp.ingest.writer import ParseOptions, RawReport, write_batch

    s = app.extensions["settings"]
    options = ParseOptions(s.REPORT_TASK_NAME, s.timezone, s.REPORT_MAX_BYTES)
    raw = db.engine.raw_connection()
    try:
        result = write_batch(raw.dbapi_connection, [RawReport(body=body)], options)
    finally:
        raw.close()
    assert result.quarantined == 0
    (message_id,) = result.ids_by_report.values()
    return message_id


def legacy_body() -> bytes:
    """The oldest shape: `type`, `processed_at`, a string error, no exchange, no routing key."""
    kwargs = {
        "type": "dataset-ingestion",
        "processed_at": "2026-03-31 10:15:02.123 +0200",
        "error_message": "[('callback_func_main', KeyError('x'))]",
        "hash": "b" * 64,
        "object_identifiers": {"instrument": "BL13", "investigation": "2022097034"},
        "payload": '{"investigation": "2022097034"}',
    }
    envelope = {"id": str(uuid.uuid4()), "task": TASK, "args": [], "kwargs": kwargs}
    return json.dumps(envelope).encode()


def start_end_body() -> bytes:
    """processing_start/processing_end, no exchange_name/routing_key."""
    return report_body(exchange_name=None, routing_key=None, errored=True, error_message="oops")


def review(client, message_id, token, **data):
    return client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": token, "step": "review", "routing_key": "dataset.ingest", **data},
    )


def publish(client, message_id, token, html, **data):
    form_token = html.split('name="form_token" value="')[1].split('"')[0]
    return client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "publish",
            "form_token": form_token,
            "routing_key": "dataset.ingest",
            **data,
        },
    )


@pytest.fixture
def seen(app, db, broker):
    """`dataset.ingest` seen on the test exchange (the routing keys offered come from traffic)."""
    _, exchange, _ = broker
    store_message(app, db, exchange_name=exchange.name, routing_key="dataset.ingest")
    return exchange.name


def test_legacy_report_is_offered_the_allow_list_and_published_there(app, db, client, broker, seen):
    conn, exchange, queue = broker
    message_id = seed_raw(app, db, legacy_body())
    token = csrf_token(client)

    detail = client.get(f"/messages/{message_id}").get_data(as_text=True)
    assert 'data-action="reingest"' in detail and "data-reingest-refused" not in detail
    page = client.get(f"/messages/{message_id}/reingest")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<select id="exchange" name="exchange" required>' in html
    assert f'<option value="{exchange.name}"' in html
    assert '<option value="dataset.ingest"' in html
    assert 'data-warning="no-original-headers"' in html

    confirm = review(client, message_id, token, exchange=exchange.name, payload="{}")
    assert confirm.status_code == 200
    confirm_html = confirm.get_data(as_text=True)
    assert f'<input type="hidden" name="exchange" value="{exchange.name}">' in confirm_html
    assert "(chosen: the report recorded none)" in confirm_html
    assert 'data-warning="no-original-headers"' in confirm_html

    response = publish(
        client, message_id, token, confirm_html, exchange=exchange.name, payload="{}"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    delivered = get_one(conn, queue)
    assert delivered.body == "{}"
    assert delivered.delivery_info["exchange"] == exchange.name
    (row,) = audit_rows(db, message_id)
    assert (row.action, row.outcome) == ("reingest", "ok")
    assert row.target == f"{exchange.name} / dataset.ingest"
    assert row.detail["exchange_chosen"] is True
    assert row.detail["original_headers"] == "absent"


def test_chosen_exchange_off_the_allow_list_is_refused_and_audited(app, db, client, broker, seen):
    conn, _, queue = broker
    message_id = seed_raw(app, db, start_end_body())
    token = csrf_token(client)

    forged = review(client, message_id, token, exchange="dataset-ingest-exchange", payload="{}")
    assert forged.status_code == 403
    assert "not on the re-ingest allow-list" in forged.get_data(as_text=True)

    response = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "publish",
            "routing_key": "dataset.ingest",
            "payload": "{}",
            "exchange": "dataset-ingest-exchange",
        },
    )
    assert response.status_code == 403
    (row,) = audit_rows(db, message_id)
    assert row.outcome == "refused"
    assert row.detail["exchange"] == "dataset-ingest-exchange"
    assert row.detail["exchange_chosen"] is True
    assert "allow-list" in row.detail["reason"]
    with pytest.raises(Empty):
        get_one(conn, queue, timeout=0.5)


def test_without_an_allow_list_a_report_without_exchange_is_refused(
    app, db, client, reingest_allowed
):
    message_id = seed_raw(app, db, legacy_body())
    reingest_allowed("some-pacer-exchange")
    assert client.get(f"/messages/{message_id}/reingest").status_code == 200
    reingest_allowed()  # REINGEST_EXCHANGES empty: re-ingest disabled
    page = client.get(f"/messages/{message_id}/reingest")
    assert page.status_code == 403
    assert "Re-ingest is disabled" in page.get_data(as_text=True)


def test_stored_exchange_wins_and_stored_headers_mean_no_warning(app, db, client, broker, seen):
    conn, exchange, queue = broker
    message_id = store_message(
        app,
        db,
        exchange_name=exchange.name,
        routing_key="dataset.ingest",
        errored=True,
        error_message={"callback_func_a": "KeyError: 'x'"},
        headers={"x-pacer-stage": "1"},
    )
    without = store_message(app, db, exchange_name=exchange.name, routing_key="dataset.ingest")
    token = csrf_token(client)
    html = client.get(f"/messages/{message_id}/reingest").get_data(as_text=True)
    assert 'name="exchange"' not in html
    assert "no-original-headers" not in html
    # The same shape without the `headers` extra is warned about.
    other = client.get(f"/messages/{without}/reingest").get_data(as_text=True)
    assert 'data-warning="no-original-headers"' in other

    confirm = review(client, message_id, token, exchange="dataset-ingest-exchange", payload="{}")
    assert "no-original-headers" not in confirm.get_data(as_text=True)
    response = publish(
        client,
        message_id,
        token,
        confirm.get_data(as_text=True),
        exchange="dataset-ingest-exchange",  # ignored: the report recorded its exchange
        payload="{}",
    )
    assert response.status_code == 200
    assert get_one(conn, queue).delivery_info["exchange"] == exchange.name
    (row,) = audit_rows(db, message_id)
    assert "exchange_chosen" not in row.detail and "original_headers" not in row.detail
