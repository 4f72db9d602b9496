"""The re-ingest editor (issue 16, item 3): pretty payload, original bytes kept when unedited, a
review step with an escaped diff, one-time confirmation tokens, and the new report(s) linked."""

from __future__ import annotations

import json
from queue import Empty

import pytest

from tests.auth.support import csrf_token
from tests.factories import store_message

from .test_reingest import audit_rows, get_one


def test_editor_shows_the_payload_indented(app, db, client, broker):
    _, exchange, _ = broker
    message_id = store_message(
        app, db, exchange_name=exchange.name, routing_key="dataset.ingest", payload='{"a":[1,2]}'
    )
    html = client.get(f"/messages/{message_id}/reingest").get_data(as_text=True)
    assert "{\n  &#34;a&#34;: [\n    1,\n    2\n  ]\n}</textarea>" in html
    assert 'data-format="json"' in html and "js/reingest.js" in html


def test_xml_is_indented_without_expanding_entities(app, db):
    from webapp.actions.editor import pretty

    assert pretty("<a><b>x</b><c/></a>", "xml") == "<a>\n  <b>x</b>\n  <c/>\n</a>"
    bomb = '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'
    assert pretty(bomb, "xml") == bomb  # refused by defusedxml: shown as received
    assert pretty("{not json", "json") == "{not json"


def test_unedited_pretty_payload_publishes_the_original_bytes(app, db, client, broker):
    conn, exchange, queue = broker
    original = '{"investigation":"2022097034",  "n":1}'
    message_id = store_message(
        app, db, exchange_name=exchange.name, routing_key="dataset.ingest", payload=original
    )
    token = csrf_token(client)
    pretty = json.dumps(json.loads(original), indent=2)
    review = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "review",
            "payload": pretty.replace("\n", "\r\n"),
            "routing_key": "dataset.ingest",
        },
    )
    assert review.status_code == 200
    html = review.get_data(as_text=True)
    assert 'data-diff="none"' in html
    assert audit_rows(db, message_id) == []
    form_token = html.split('name="form_token" value="')[1].split('"')[0]
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "publish",
            "form_token": form_token,
            "payload": original,
            "routing_key": "dataset.ingest",
        },
    )
    assert response.status_code == 200
    assert get_one(conn, queue).body == original
    (row,) = audit_rows(db, message_id)
    assert row.detail["edited"] is False and row.detail["form_token"] == form_token


def test_review_shows_an_escaped_diff_and_refuses_malformed(app, db, client, broker):
    _, exchange, _ = broker
    message_id = store_message(
        app, db, exchange_name=exchange.name, routing_key="dataset.ingest", payload='{"a": 1}'
    )
    token = csrf_token(client)
    edited = '{\n  "a": 2,\n  "b": "<script>x</script>"\n}'
    html = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "review",
            "payload": edited,
            "routing_key": "dataset.ingest",
        },
    ).get_data(as_text=True)
    assert '<span class="diff-del">-  &#34;a&#34;: 1</span>' in html
    assert '<span class="diff-add">+  &#34;a&#34;: 2,</span>' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html

    bad = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": token,
            "step": "review",
            "payload": '{"a": ',
            "routing_key": "dataset.ingest",
        },
    )
    assert bad.status_code == 400
    assert "not well-formed JSON" in bad.get_data(as_text=True)
    assert audit_rows(db, message_id) == []


def test_a_confirmation_is_published_once(app, db, client, broker):
    conn, exchange, queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name, routing_key="dataset.ingest")
    data = {
        "csrf_token": csrf_token(client),
        "step": "publish",
        "form_token": "tok-123",
        "payload": '{"x": 1}',
        "routing_key": "dataset.ingest",
    }
    first = client.post(f"/messages/{message_id}/reingest", data=data)
    assert first.status_code == 200
    second = client.post(f"/messages/{message_id}/reingest", data=data)
    assert second.status_code == 409
    assert 'data-outcome="duplicate"' in second.get_data(as_text=True)
    assert get_one(conn, queue).body == '{"x": 1}'
    with pytest.raises(Empty):
        get_one(conn, queue, timeout=0.5)
    assert len(audit_rows(db, message_id)) == 1


def test_success_links_the_new_report_when_it_arrives(app, db, client, broker):
    _, exchange, _ = broker
    message_id = store_message(app, db, exchange_name=exchange.name, routing_key="dataset.ingest")
    response = client.post(
        f"/messages/{message_id}/reingest",
        data={
            "csrf_token": csrf_token(client),
            "payload": '{"x": 1}',
            "routing_key": "dataset.ingest",
        },
    )
    html = response.get_data(as_text=True)
    assert "<textarea" not in html  # no second submission from the result
    (row,) = audit_rows(db, message_id)
    poll = f"/messages/{message_id}/reingest/{row.id}/arrivals"
    assert poll in html
    waiting = client.get(poll).get_data(as_text=True)
    assert "hx-get" in waiting and "polls=1" in waiting

    store_message(
        app,
        db,
        exchange_name=exchange.name,
        routing_key="dataset.ingest",
        headers={"x-dashboard-reingest-of": str(message_id + 999)},
    )
    new_id = store_message(
        app,
        db,
        exchange_name=exchange.name,
        routing_key="dataset.ingest",
        headers={"x-dashboard-reingest-of": str(message_id)},
    )
    arrived = client.get(poll).get_data(as_text=True)
    assert f'data-arrival="{new_id}"' in arrived and arrived.count("data-arrival=") == 1
    assert "hx-get" not in arrived
    assert (
        client.get(f"/messages/{message_id}/reingest/{row.id + 1000}/arrivals").status_code == 404
    )
