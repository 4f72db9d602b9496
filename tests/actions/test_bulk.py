"""Bulk acknowledge (preview + confirm) and bulk re-ingestion (task with progress, rate limit)."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from tests.auth.support import csrf_token
from tests.factories import store_message


def test_bulk_acknowledge_preview_confirm_and_undo(app, db, client):
    from models import AuditLog, Message

    errored = [store_message(app, db, errored=True, message_type="user-sync") for _ in range(3)]
    store_message(app, db, errored=False, message_type="user-sync")
    store_message(app, db, errored=True, message_type="dataset-ingestion")

    preview = client.get(
        "/actions/acknowledge", query_string={"status": "errored", "type": "user-sync"}
    )
    assert preview.status_code == 200
    assert 'data-count="3"' in preview.get_data(as_text=True)

    token = csrf_token(client)
    done = client.post(
        "/actions/acknowledge",
        data={"csrf_token": token, "status": "errored", "type": "user-sync", "expected": "3"},
    )
    assert done.status_code == 200
    assert 'data-count="3"' in done.get_data(as_text=True)
    db.session.expire_all()
    acked = {m.id for m in db.session.query(Message).filter(Message.acknowledged_at.is_not(None))}
    assert acked == set(errored)
    row = db.session.query(AuditLog).filter_by(action="bulk-acknowledge").one()
    assert sorted(row.message_ids) == sorted(errored)
    assert row.detail["filter"] == {"status": "errored", "type": "user-sync"}

    # Acknowledged messages are out of the default list: a second preview finds none.
    again = client.get(
        "/actions/acknowledge", query_string={"status": "errored", "type": "user-sync"}
    )
    assert 'data-count="0"' in again.get_data(as_text=True)

    undo = client.post(
        "/actions/acknowledge",
        data={
            "csrf_token": token,
            "status": "errored",
            "type": "user-sync",
            "mode": "unacknowledge",
        },
    )
    assert undo.status_code == 200
    db.session.expire_all()
    assert db.session.query(Message).filter(Message.acknowledged_at.is_not(None)).count() == 0


def test_bulk_filter_errors_are_400(app, db, client):
    assert client.get("/actions/acknowledge", query_string={"status": "bogus"}).status_code == 400
    assert client.get("/actions/acknowledge", query_string={"mode": "delete"}).status_code == 400


@pytest.fixture
def bound_exchange(settings, reingest_allowed):
    suffix = uuid.uuid4().hex[:8]
    exchange = Exchange(f"test-bulk-{suffix}", type="direct", durable=False)
    reingest_allowed(exchange.name)
    queue = Queue(
        f"test-bulk-q-{suffix}", exchange=exchange, routing_key="dataset.ingest", durable=False
    )
    with Connection(settings.broker_url) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        queue(channel).declare()
        yield conn, exchange, queue
        queue(channel).delete()
        exchange(channel).delete()


def test_bulk_reingest_of_an_error_group(app, db, client, bound_exchange, monkeypatch):
    """An error group's messages go out at the configured rate; progress lands in the audit row."""
    import tasks.actions
    from models import AuditLog, Message
    from webapp.actions import services

    conn, exchange, queue = bound_exchange
    failing = [
        store_message(
            app,
            db,
            exchange_name=exchange.name,
            errored=True,
            payload=f'{{"n": {i}}}',
            error_message={"callback_func_x": f"KeyError: 'visit_{i}'"},
        )
        for i in range(4)
    ]
    # One in another error group, and one routed nowhere.
    store_message(
        app, db, exchange_name=exchange.name, errored=True, error_message={"cb": "Other: x"}
    )
    db.session.expire_all()
    fingerprint = db.session.query(Message.error_fingerprint).filter_by(id=failing[0]).scalar()
    assert fingerprint

    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    preview = client.get("/actions/reingest", query_string={"fingerprint": fingerprint})
    assert 'data-count="4"' in preview.get_data(as_text=True)
    response = client.post(
        "/actions/reingest",
        data={"csrf_token": csrf_token(client), "fingerprint": fingerprint, "expected": "4"},
    )
    assert response.status_code == 302
    (job_id,) = enqueued
    assert response.headers["Location"].endswith(f"/actions/jobs/{job_id}")
    assert 'data-outcome="pending"' in client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)

    # Run the task body as the worker would, with a fake clock to observe the rate limit.
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    settings = app.extensions["settings"].__class__(
        **{**app.extensions["settings"].__dict__, "REINGEST_RATE_PER_SECOND": 2}
    )
    services.run_bulk_reingest(job_id, settings, clock=lambda: now[0], sleep=sleep)
    assert now[0] == pytest.approx(1.5)  # 4 messages at 2/s: slots at 0, 0.5, 1.0, 1.5

    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert job.outcome == "ok"
    assert (job.detail["total"], job.detail["done"], job.detail["failed"]) == (4, 4, 0)
    assert sorted(job.message_ids) == sorted(failing)
    page = client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)
    assert 'data-outcome="ok"' in page and "4 published" in page

    simple = conn.SimpleQueue(queue, no_ack=True)
    try:
        got = sorted(simple.get(timeout=5).headers["x-dashboard-reingest-of"] for _ in range(4))
    finally:
        simple.close()
    assert got == sorted(str(i) for i in failing)

    # A redelivered task does not publish twice.
    services.run_bulk_reingest(job_id, settings, clock=lambda: now[0], sleep=sleep)
    db.session.expire_all()
    assert db.session.get(AuditLog, job_id).detail["done"] == 4


def _confirmation(html: str) -> dict[str, list[str]]:
    """The hidden fields of a bulk preview's confirmation form, as the browser would post them."""
    import html as html_lib
    import re

    form = html[html.index("<form") : html.index("</form>")]
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        fields.setdefault(name, []).append(html_lib.unescape(value))
    return fields


def test_bulk_acknowledge_acts_on_the_set_the_preview_counted(app, db, client):
    """15 previewed, one more arrives before the click: exactly the 15 are acknowledged."""
    from models import AuditLog, Message

    seen = [store_message(app, db, errored=True, message_type="user-sync") for _ in range(15)]
    preview = client.get("/actions/acknowledge", query_string={"status": "errored"})
    html = preview.get_data(as_text=True)
    assert 'data-count="15"' in html
    assert "arrive after this preview are left out" in html
    late = store_message(app, db, errored=True, message_type="user-sync")

    done = client.post("/actions/acknowledge", data=_confirmation(html))
    assert done.status_code == 200
    assert "confirmed 15, acknowledged 15" in done.get_data(as_text=True)
    db.session.expire_all()
    acked = {m.id for m in db.session.query(Message).filter(Message.acknowledged_at.is_not(None))}
    assert acked == set(seen) and late not in acked
    row = db.session.query(AuditLog).filter_by(action="bulk-acknowledge").one()
    assert (row.detail["count"], row.detail["expected"]) == (15, 15)


def test_bulk_reingest_publishes_the_set_the_preview_counted(
    app, db, client, bound_exchange, monkeypatch
):
    import tasks.actions
    from models import AuditLog
    from webapp.actions import services

    conn, exchange, queue = bound_exchange
    seen = [store_message(app, db, exchange_name=exchange.name, errored=True) for _ in range(15)]
    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    html = client.get("/actions/reingest", query_string={"status": "errored"}).get_data(
        as_text=True
    )
    assert 'data-count="15"' in html
    late = store_message(app, db, exchange_name=exchange.name, errored=True)

    response = client.post("/actions/reingest", data=_confirmation(html))
    assert response.status_code == 302
    (job_id,) = enqueued
    settings = app.extensions["settings"]
    services.run_bulk_reingest(job_id, settings, clock=lambda: 0.0, sleep=lambda s: None)
    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert (job.detail["total"], job.detail["done"], job.detail["expected"]) == (15, 15, 15)
    assert sorted(job.message_ids) == sorted(seen) and late not in job.message_ids
    page = client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)
    assert 'data-confirmed="15" data-published="15"' in page
    assert "Confirmed 15, published 15." in page


def test_a_malformed_bound_is_a_400_naming_it(app, db, client):
    response = client.post(
        "/actions/acknowledge",
        data={"csrf_token": csrf_token(client), "status": "errored", "through_id": "1; drop"},
    )
    assert response.status_code == 400
    assert "through_id" in response.get_data(as_text=True)


def _set_acknowledged(db, ids: list[int], acknowledged: bool) -> None:
    """Someone else (un-)acknowledges messages between the preview and the confirmation."""
    from sqlalchemy import text

    db.session.execute(
        text(
            "UPDATE messages SET acknowledged_at = CASE WHEN :ack THEN now() END, "
            "acknowledged_by = CASE WHEN :ack THEN 'someone' END WHERE id = ANY(:ids)"
        ),
        {"ack": acknowledged, "ids": list(ids)},
    )
    db.session.commit()


def test_bulk_reingest_confirmation_refuses_a_count_that_changed(
    app, db, client, bound_exchange, monkeypatch
):
    """3 previewed and confirmed; a 4th is un-acknowledged in between (it matches the filter
    again, under the bound): nothing is started, the page says why and previews the 4."""
    import tasks.actions
    from models import AuditLog

    conn, exchange, queue = bound_exchange
    seen = [store_message(app, db, exchange_name=exchange.name, errored=True) for _ in range(4)]
    _set_acknowledged(db, seen[3:], True)
    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    html = client.get("/actions/reingest", query_string={"status": "errored"}).get_data(
        as_text=True
    )
    assert 'data-count="3"' in html
    _set_acknowledged(db, seen[3:], False)

    refused = client.post("/actions/reingest", data=_confirmation(html))
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert "4 messages match now, not the 3 confirmed: nothing was re-ingested" in page
    assert 'data-changed="4"' in page and 'data-count="4"' in page
    assert enqueued == []
    db.session.expire_all()
    rows = db.session.query(AuditLog).filter_by(action="bulk-reingest").all()
    assert [(r.outcome, r.detail["count"], r.detail["expected"]) for r in rows] == [
        ("refused", 4, 3)
    ]

    # The refusal is a fresh preview: confirming it starts the job for the 4.
    again = client.post("/actions/reingest", data=_confirmation(page))
    assert again.status_code == 302
    (job_id,) = enqueued
    assert db.session.get(AuditLog, job_id).detail["expected"] == 4


def test_bulk_reingest_job_publishes_nothing_when_the_set_changed_before_it_ran(
    app, db, client, bound_exchange, monkeypatch
):
    """Confirmed 3; a 4th matches again before a worker takes the job: confirmed N is
    published N, or nothing (the job says why)."""
    import tasks.actions
    from models import AuditLog
    from webapp.actions import services

    conn, exchange, queue = bound_exchange
    seen = [store_message(app, db, exchange_name=exchange.name, errored=True) for _ in range(4)]
    _set_acknowledged(db, seen[3:], True)
    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    html = client.get("/actions/reingest", query_string={"status": "errored"}).get_data(
        as_text=True
    )
    assert client.post("/actions/reingest", data=_confirmation(html)).status_code == 302
    (job_id,) = enqueued
    _set_acknowledged(db, seen[3:], False)

    services.run_bulk_reingest(
        job_id, app.extensions["settings"], clock=lambda: 0.0, sleep=lambda s: None
    )
    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert (job.outcome, job.detail["done"], job.detail["expected"]) == ("error", 0, 3)
    assert "4 messages match now, not the 3 confirmed" in job.detail["errors"][0]["error"]
    simple = conn.SimpleQueue(queue, no_ack=True)
    try:
        with pytest.raises(simple.Empty):
            simple.get(timeout=1)
    finally:
        simple.close()
    page = client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)
    assert 'data-confirmed="3" data-published="0"' in page
    assert "nothing was re-ingested" in page
