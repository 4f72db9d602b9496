"""Re-ingest hardening (issue 14: findings 1, 7 and 9), against the real PostgreSQL and RabbitMQ.

1. Re-ingest publishes only to the exchanges of REINGEST_EXCHANGES, never to the dashboard's own,
   Celery's or the broker's, whatever the list says; single and bulk, before the preview and
   before publishing; every refusal audited. The re-ingest broker user may write nowhere else.
7. A bad stored exchange or routing key is a 4xx or an audited error, never a 500; no bulk job
   stays `running` once its task has ended or its worker is gone.
9. Single re-ingests are rate-limited per user (429 + Retry-After, audited); an edited payload
   over REPORT_MAX_BYTES is refused before publishing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid

import pytest
import requests
from kombu import Connection, Exchange, Queue

from tests.actions.test_reingest import audit_rows, get_one
from tests.auth.support import csrf_token, login
from tests.factories import store_message
from tests.processes import wait_for
from webapp.config import ConfigError, Settings

BASE_ENV = {"RMQ_HOST": "localhost", "DISABLED_AUTH": "true", "ENVIRONMENT": "development"}
SHUTDOWN = json.dumps({"method": "shutdown", "arguments": {}, "destination": None})


@pytest.fixture
def replace_settings(app):
    """Factory: change the app's settings for this test (restored after it)."""
    original = app.extensions["settings"]

    def replace(**changes):
        app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], **changes)
        return app.extensions["settings"]

    yield replace
    app.extensions["settings"] = original


def post_reingest(client, message_id, payload, routing_key="dataset.ingest", **headers):
    return client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": csrf_token(client), "payload": payload, "routing_key": routing_key},
        headers=headers,
    )


def nothing_arrives(conn, queue, timeout=0.5) -> bool:
    try:
        get_one(conn, queue, timeout=timeout)
    except Exception:  # noqa: BLE001 - kombu's Empty
        return True
    return False


def drain(conn, queue, timeout=1.0) -> int:
    """How many messages arrive on `queue` (until none for `timeout` s)."""
    simple = conn.SimpleQueue(queue, no_ack=True)
    count = 0
    try:
        while True:
            try:
                simple.get(block=True, timeout=timeout)
            except simple.Empty:
                return count
            count += 1
    finally:
        simple.close()


@pytest.fixture
def dashboard_queue(settings):
    """A private queue bound to the dashboard's own report exchange: a forged report lands here."""
    exchange = Exchange(settings.DASHBOARD_EXCHANGE, type="direct", durable=True)
    queue = Queue(
        f"test-forged-{uuid.uuid4().hex[:8]}",
        exchange=exchange,
        routing_key=settings.DASHBOARD_ROUTING_KEY,
        durable=False,
        auto_delete=True,
    )
    with Connection(settings.broker_url) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        queue(channel).declare()
        yield conn, queue
        queue(channel).delete()


# ---- 1. configuration -------------------------------------------------------------------------


def test_allow_list_is_parsed_and_empty_by_default():
    assert Settings.from_env(environ=BASE_ENV).REINGEST_EXCHANGES == ()
    s = Settings.from_env(
        environ={**BASE_ENV, "REINGEST_EXCHANGES": " dataset-ingest-exchange, user-sync-exchange,,"}
    )
    assert s.REINGEST_EXCHANGES == ("dataset-ingest-exchange", "user-sync-exchange")
    # The investigation-ops exchange is PACER's: allowed when (and only when) it is listed.
    s = Settings.from_env(environ={**BASE_ENV, "REINGEST_EXCHANGES": "investigation-ops-exchange"})
    assert s.REINGEST_EXCHANGES == ("investigation-ops-exchange",)


@pytest.mark.parametrize(
    "name",
    [
        "celery.pidbox",
        "celeryev",
        "celery",
        "reply.celery.pidbox",
        "worker1.reply.celery.pidbox",
        "amq.direct",
        "amq.topic",
        "dashboard-logging-exchange",
        "pacer-dashboard-tasks",
        "x" * 256,
    ],
)
def test_start_up_fails_naming_the_variable_for_a_never_allowed_exchange(name):
    with pytest.raises(ConfigError, match=r"^REINGEST_EXCHANGES: .*can never be a re-ingest"):
        Settings.from_env(
            environ={**BASE_ENV, "REINGEST_EXCHANGES": f"dataset-ingest-exchange,{name}"}
        )


def test_own_exchanges_follow_their_settings():
    env = {**BASE_ENV, "DASHBOARD_EXCHANGE": "reports-x", "CELERY_QUEUE": "tasks-x"}
    for name in ("reports-x", "tasks-x"):
        with pytest.raises(ConfigError, match="REINGEST_EXCHANGES"):
            Settings.from_env(environ={**env, "REINGEST_EXCHANGES": name})
    # The defaults are ordinary names once the dashboard uses others.
    Settings.from_env(environ={**env, "REINGEST_EXCHANGES": "dashboard-logging-exchange"})


def test_reingest_broker_user_settings():
    s = Settings.from_env(environ={**BASE_ENV, "RMQ_PASSWORD": "main"})
    assert s.reingest_broker_url == s.broker_url
    s = Settings.from_env(
        environ={
            **BASE_ENV,
            "REINGEST_RMQ_USERNAME": "pacer-dashboard-reingest",
            "REINGEST_RMQ_PASSWORD": "a/b@c",
        }
    )
    assert s.reingest_broker_url.startswith("pyamqp://pacer-dashboard-reingest:a%2Fb%40c@")
    with pytest.raises(ConfigError, match="^REINGEST_RMQ_PASSWORD"):
        Settings.from_env(environ={**BASE_ENV, "REINGEST_RMQ_USERNAME": "someone"})


# ---- 1. single re-ingest ----------------------------------------------------------------------


def test_reingest_to_the_dashboard_exchange_is_refused_before_preview_and_publish(
    app, db, client, broker, dashboard_queue, settings, replace_settings
):
    """The pen-test's forged report: a message naming the dashboard's own exchange."""
    conn, queue = dashboard_queue
    # Even listed (a settings object built without validation), it is never a target.
    listed = app.extensions["settings"].REINGEST_EXCHANGES
    replace_settings(REINGEST_EXCHANGES=(*listed, settings.DASHBOARD_EXCHANGE))
    message_id = store_message(
        app,
        db,
        exchange_name=settings.DASHBOARD_EXCHANGE,
        routing_key=settings.DASHBOARD_ROUTING_KEY,
    )
    preview = client.get(f"/messages/{message_id}/reingest")
    assert preview.status_code == 403
    text = preview.get_data(as_text=True)
    assert "can never be a re-ingest target" in text and "<textarea" not in text

    forged = json.dumps({"id": str(uuid.uuid4()), "task": settings.REPORT_TASK_NAME, "args": []})
    response = post_reingest(client, message_id, forged, settings.DASHBOARD_ROUTING_KEY)
    assert response.status_code == 403
    assert "report exchange" in response.get_data(as_text=True)
    assert nothing_arrives(conn, queue)
    (row,) = audit_rows(db, message_id)
    assert (row.action, row.outcome) == ("reingest", "refused")
    assert "can never be a re-ingest target" in row.detail["reason"]


def test_reingest_to_celery_pidbox_is_refused(app, db, client, broker):
    message_id = store_message(
        app, db, exchange_name="celery.pidbox", routing_key="", payload=SHUTDOWN
    )
    assert client.get(f"/messages/{message_id}/reingest").status_code == 403
    response = post_reingest(client, message_id, SHUTDOWN, "")
    assert response.status_code == 403
    assert "Celery" in response.get_data(as_text=True)
    assert [(r.outcome, "Celery" in r.detail["reason"]) for r in audit_rows(db, message_id)] == [
        ("refused", True)
    ]


def test_an_exchange_not_on_the_list_is_refused(app, db, client, broker):
    conn, exchange, queue = broker
    # A real exchange with a bound queue, but not on the list (the list has only `broker`'s).
    other = Exchange(f"test-unlisted-{uuid.uuid4().hex[:8]}", type="direct", durable=False)
    other_queue = Queue(f"{other.name}-q", exchange=other, routing_key="dataset.ingest")
    channel = conn.channel()
    other(channel).declare()
    other_queue(channel).declare()
    try:
        message_id = store_message(app, db, exchange_name=other.name)
        page = client.get(f"/messages/{message_id}")
        assert 'data-action="reingest"' not in page.get_data(as_text=True)
        assert "not on the re-ingest allow-list" in page.get_data(as_text=True)
        response = post_reingest(client, message_id, "{}")
        assert response.status_code == 403
        assert "not on the re-ingest allow-list" in response.get_data(as_text=True)
        assert nothing_arrives(conn, other_queue)
        assert [r.outcome for r in audit_rows(db, message_id)] == ["refused"]
    finally:
        other_queue(channel).delete()
        other(channel).delete()


def test_empty_allow_list_disables_reingest_with_a_clear_message(
    app, db, client, broker, replace_settings
):
    replace_settings(REINGEST_EXCHANGES=())
    _conn, exchange, _queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name, errored=True)
    assert "Re-ingest is disabled" in client.get(f"/messages/{message_id}").get_data(as_text=True)
    preview = client.get(f"/messages/{message_id}/reingest")
    assert preview.status_code == 403
    assert "Re-ingest is disabled" in preview.get_data(as_text=True)
    response = post_reingest(client, message_id, "{}")
    assert response.status_code == 403
    assert [r.outcome for r in audit_rows(db, message_id)] == ["refused"]
    bulk = client.get("/actions/reingest", query_string={"status": "errored"})
    assert bulk.status_code == 403 and "REINGEST_EXCHANGES is empty" in bulk.get_data(as_text=True)
    bulk = client.post("/actions/reingest", data={"csrf_token": csrf_token(client)})
    assert bulk.status_code == 403
    from models import AuditLog

    (row,) = db.session.query(AuditLog).filter_by(action="bulk-reingest").all()
    assert row.outcome == "refused" and "disabled" in row.detail["reason"]


def test_publisher_refuses_a_never_allowed_exchange_whatever_the_list(app, settings):
    from webapp.actions.targets import reingest_publisher
    from webapp.amqp import PublishRefused

    listed = dataclasses.replace(
        settings,
        REINGEST_EXCHANGES=("celery.pidbox", "amq.direct", settings.DASHBOARD_EXCHANGE, "ok-x"),
        REINGEST_RMQ_USERNAME="",
    )
    with reingest_publisher(listed) as publisher:
        for name in ("celery.pidbox", "amq.direct", settings.DASHBOARD_EXCHANGE, "", "other"):
            with pytest.raises(PublishRefused):
                publisher.publish(
                    SHUTDOWN, exchange=name, routing_key="", payload_format="json", headers={}
                )


# ---- 1. bulk re-ingest ------------------------------------------------------------------------


def test_bulk_reingest_leaves_out_refused_exchanges_in_preview_job_and_audit(
    app, db, client, broker, dashboard_queue, settings, monkeypatch
):
    import tasks.actions
    from models import AuditLog
    from webapp.actions import services

    conn, exchange, queue = broker
    forged_conn, forged_queue = dashboard_queue
    good = [store_message(app, db, exchange_name=exchange.name, errored=True) for _ in range(2)]
    bad = [
        store_message(app, db, exchange_name="celery.pidbox", errored=True, payload=SHUTDOWN),
        store_message(
            app,
            db,
            exchange_name=settings.DASHBOARD_EXCHANGE,
            routing_key=settings.DASHBOARD_ROUTING_KEY,
            errored=True,
        ),
        store_message(app, db, exchange_name="x" * 300, errored=True),
    ]
    preview = client.get("/actions/reingest", query_string={"status": "errored"})
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert 'data-count="2"' in text
    assert 'data-refused="3"' in text and "celery.pidbox" in text

    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    response = client.post(
        "/actions/reingest", data={"csrf_token": csrf_token(client), "status": "errored"}
    )
    assert response.status_code == 302
    refused = db.session.query(AuditLog).filter_by(action="bulk-reingest", outcome="refused").one()
    assert sorted(refused.message_ids) == sorted(bad)
    assert refused.detail["count"] == 3 and "allow-list" in refused.detail["reason"]

    (job_id,) = enqueued
    services.run_bulk_reingest(job_id, app.extensions["settings"], sleep=lambda s: None)
    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert (job.detail["total"], job.detail["done"], job.detail["refused"]) == (2, 2, 3)
    assert job.outcome == "partial" and sorted(job.message_ids) == sorted(good)
    simple = conn.SimpleQueue(queue, no_ack=True)
    try:
        got = sorted(simple.get(timeout=5).headers["x-dashboard-reingest-of"] for _ in good)
    finally:
        simple.close()
    assert got == sorted(str(i) for i in good)
    assert nothing_arrives(forged_conn, forged_queue)


def test_bulk_job_rechecks_the_list_when_it_runs(
    app, db, client, broker, monkeypatch, replace_settings
):
    """An exchange removed from the list between the preview and the job is not published to."""
    import tasks.actions
    from models import AuditLog
    from webapp.actions import services

    conn, exchange, queue = broker
    store_message(app, db, exchange_name=exchange.name, errored=True)
    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    client.post("/actions/reingest", data={"csrf_token": csrf_token(client), "status": "errored"})
    (job_id,) = enqueued
    worker_settings = replace_settings(REINGEST_EXCHANGES=("some-other-exchange",))
    services.run_bulk_reingest(job_id, worker_settings, sleep=lambda s: None)
    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert (job.outcome, job.detail["done"], job.detail["refused"]) == ("error", 0, 1)
    assert nothing_arrives(conn, queue)


# ---- 1. the re-ingest broker user (defence in depth) ------------------------------------------


def reingest_user_env() -> tuple[str, str]:
    user, password = (
        os.environ.get("REINGEST_RMQ_USERNAME"),
        os.environ.get("REINGEST_RMQ_PASSWORD"),
    )
    if not user:
        pytest.fail(
            "REINGEST_RMQ_USERNAME is not set: the services predate scripts/rmq-users.sh "
            "(restart them: scripts/services.sh stop && scripts/test.sh ...)"
        )
    return user, password


def test_reingest_broker_user_may_write_only_to_the_listed_exchanges(settings):
    import amqp.exceptions

    user, password = reingest_user_env()
    listed = [n for n in os.environ.get("REINGEST_EXCHANGES", "").split(",") if n]
    assert listed, "scripts/rmq-users.sh writes REINGEST_EXCHANGES with the user"
    restricted = dataclasses.replace(settings, RMQ_USERNAME=user, RMQ_PASSWORD=password).broker_url
    with Connection(settings.broker_url) as admin:
        Exchange(listed[0], type="direct", durable=True)(admin.channel()).declare()
    for name, allowed in [
        (listed[0], True),
        (settings.DASHBOARD_EXCHANGE, False),
        ("celery.pidbox", False),
        ("amq.direct", False),
    ]:
        with Connection(restricted, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            if allowed:
                producer.publish(b"{}", exchange=name, routing_key="nowhere", retry=False)
            else:
                with pytest.raises(amqp.exceptions.AccessRefused):
                    producer.publish(b"{}", exchange=name, routing_key="x", retry=False)
        # It may not declare, bind or read anything either.
    with Connection(restricted) as conn, pytest.raises(amqp.exceptions.AccessRefused):
        Queue(f"test-sneaky-{uuid.uuid4().hex[:6]}", auto_delete=True)(conn.channel()).declare()


def test_the_dashboard_publishes_reingests_as_the_reingest_user(
    app, db, client, broker, settings, replace_settings
):
    """The app-level check lets a test exchange through; the broker user may not write there."""
    user, password = reingest_user_env()
    conn, exchange, queue = broker
    replace_settings(REINGEST_RMQ_USERNAME=user, REINGEST_RMQ_PASSWORD=password)
    message_id = store_message(app, db, exchange_name=exchange.name)
    response = post_reingest(client, message_id, "{}")
    assert response.status_code == 502
    assert "ACCESS_REFUSED" in response.get_data(as_text=True)
    assert [r.outcome for r in audit_rows(db, message_id)] == ["error"]
    assert nothing_arrives(conn, queue)


def test_publisher_as_the_reingest_user_reaches_a_listed_exchange(settings):
    """The publisher's passive declare and confirmed publish need nothing but write."""
    from webapp.actions.targets import reingest_publisher

    user, password = reingest_user_env()
    listed = [n for n in os.environ.get("REINGEST_EXCHANGES", "").split(",") if n]
    exchange = Exchange(listed[0], type="direct", durable=True)
    queue = Queue(f"test-as-user-{uuid.uuid4().hex[:8]}", exchange=exchange, routing_key="as.user")
    restricted = dataclasses.replace(
        settings,
        REINGEST_EXCHANGES=(listed[0],),
        REINGEST_RMQ_USERNAME=user,
        REINGEST_RMQ_PASSWORD=password,
    )
    with Connection(settings.broker_url) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        queue(channel).declare()
        try:
            with reingest_publisher(restricted) as publisher:
                publisher.publish(
                    "{}",
                    exchange=listed[0],
                    routing_key="as.user",
                    payload_format="json",
                    headers={"x-dashboard-reingest-of": "1"},
                )
            assert get_one(conn, queue).headers["x-dashboard-reingest-of"] == "1"
        finally:
            queue(channel).delete()


def test_main_dashboard_broker_user_is_not_an_administrator(settings):
    """`management` is enough for the management API reads (queue depths); no user admin."""
    reingest_user_env()
    me = requests.get(
        f"http://{settings.RMQ_HOST}:{settings.RMQ_MANAGEMENT_PORT}/api/whoami",
        auth=(settings.RMQ_USERNAME, settings.RMQ_PASSWORD),
        timeout=10,
    )
    me.raise_for_status()
    tags = me.json()["tags"]
    tags = tags if isinstance(tags, list) else tags.split(",")
    assert "administrator" not in tags and "management" in tags
    queues = requests.get(
        f"http://{settings.RMQ_HOST}:{settings.RMQ_MANAGEMENT_PORT}/api/queues/%2F",
        auth=(settings.RMQ_USERNAME, settings.RMQ_PASSWORD),
        timeout=10,
    )
    assert queues.status_code == 200


# ---- 7. bad stored values, failures, jobs ------------------------------------------------------


def test_an_over_long_stored_exchange_is_a_refusal_not_a_500(app, db, client, broker):
    long_name = "e" * 300
    message_id = store_message(app, db, exchange_name=long_name)
    assert client.get(f"/messages/{message_id}/reingest").status_code == 403
    response = post_reingest(client, message_id, "{}")
    assert response.status_code == 403
    assert "over 255 bytes" in response.get_data(as_text=True)
    (row,) = audit_rows(db, message_id)
    assert row.outcome == "refused" and len(row.target) < 400


def test_an_over_long_stored_routing_key_is_an_audited_error(app, db, client, broker):
    conn, exchange, queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name, routing_key="k" * 300)
    response = post_reingest(client, message_id, "{}", "k" * 300)
    assert response.status_code == 502
    assert "over 255 bytes" in response.get_data(as_text=True)
    assert [r.outcome for r in audit_rows(db, message_id)] == ["error"]


def test_an_unexpected_publish_failure_is_shown_and_audited(app, db, client, broker, monkeypatch):
    from webapp import amqp

    def explode(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(amqp.Publisher, "publish", explode)
    _conn, exchange, _queue = broker
    message_id = store_message(app, db, exchange_name=exchange.name)
    response = post_reingest(client, message_id, "{}")
    assert response.status_code == 502
    assert "RuntimeError: boom" in response.get_data(as_text=True)
    (row,) = audit_rows(db, message_id)
    assert row.outcome == "error" and "boom" in row.detail["error"]


def start_job(client, monkeypatch) -> int:
    import tasks.actions

    enqueued = []
    monkeypatch.setattr(
        tasks.actions.bulk_reingest, "delay", lambda job_id: enqueued.append(job_id)
    )
    response = client.post(
        "/actions/reingest", data={"csrf_token": csrf_token(client), "status": "errored"}
    )
    assert response.status_code == 302
    monkeypatch.undo()
    return enqueued[0]


def test_a_crashing_bulk_task_marks_its_job_failed(app, db, client, broker, monkeypatch):
    import tasks.actions
    from models import AuditLog
    from webapp.actions import services

    _conn, exchange, _queue = broker
    store_message(app, db, exchange_name=exchange.name, errored=True)
    job_id = start_job(client, monkeypatch)

    def explode(*args, **kwargs):
        raise struct_error("ubyte format requires 0 <= number <= 255")

    monkeypatch.setattr(services, "publish_message", explode)
    result = tasks.actions.bulk_reingest.apply(args=[job_id])
    assert result.failed()
    db.session.expire_all()
    job = db.session.get(AuditLog, job_id)
    assert job.outcome == "error"
    assert "ubyte format" in job.detail["failure"]
    page = client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)
    assert 'data-outcome="error"' in page and "ubyte format" in page


def struct_error(text: str) -> Exception:
    import struct

    return struct.error(text)


def test_a_job_whose_worker_died_is_failed_not_running_forever(
    app, db, client, broker, monkeypatch
):
    from sqlalchemy import text

    from models import AuditLog
    from webapp.actions import services

    _conn, exchange, _queue = broker
    store_message(app, db, exchange_name=exchange.name, errored=True)
    job_id = start_job(client, monkeypatch)
    fresh = start_job(client, monkeypatch)
    # What a killed worker leaves behind: `running`, heartbeat long ago (and one still fresh).
    for jid, age in ((job_id, 3600), (fresh, 5)):
        db.session.execute(
            text(
                "UPDATE audit_log SET outcome = 'running', detail = detail || jsonb_build_object("
                "'heartbeat_at', to_char((now() - make_interval(secs => :age)) AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\')) WHERE id = :id'
            ),
            {"id": jid, "age": age},
        )
    db.session.commit()
    # The job page shows it failed at once (no beat needed) ...
    page = client.get(f"/actions/jobs/{job_id}").get_data(as_text=True)
    assert 'data-outcome="error"' in page and "its worker was lost" in page
    # ... and the beat sweep fails the stale ones only, whoever looks.
    import tasks.actions

    assert tasks.actions.sweep_stale_jobs.apply().get() == {"failed": []}
    db.session.expire_all()
    assert db.session.get(AuditLog, fresh).outcome == "running"
    assert "reingest-jobs-sweep" in app.extensions["celery"].conf.beat_schedule
    # A redelivered task of the stale job publishes nothing and leaves it failed.
    assert services.run_bulk_reingest(job_id, app.extensions["settings"]).outcome == "error"


# ---- 9. rate limit and payload size --------------------------------------------------------------


def test_single_reingest_is_rate_limited_per_user(
    app, db, client, broker, auth_enabled, make_group, make_user, replace_settings
):
    conn, exchange, queue = broker
    replace_settings(REINGEST_USER_PER_MINUTE=3)
    message_id = store_message(app, db, exchange_name=exchange.name, message_type="user-sync")
    group = make_group("office", message_types=["user-sync"], can_reingest=True)
    first, second = make_user("first", [group]), make_user("second", [group])
    login(client, first)
    assert [post_reingest(client, message_id, "{}").status_code for _ in range(3)] == [200] * 3
    limited = post_reingest(client, message_id, "{}")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "at most 3 per minute" in limited.get_data(as_text=True)
    refused = [r for r in audit_rows(db, message_id) if r.outcome == "refused"]
    assert [(r.actor, r.detail["retry_after"] > 0) for r in refused] == [
        ("first@example.org", True)
    ]
    # Another user has a limit of their own.
    login(client, second)
    assert post_reingest(client, message_id, "{}").status_code == 200
    assert drain(conn, queue) == 4


def test_payload_over_report_max_bytes_is_refused_before_publishing(
    app, db, client, broker, replace_settings
):
    conn, exchange, queue = broker
    replace_settings(REPORT_MAX_BYTES=1024)
    message_id = store_message(app, db, exchange_name=exchange.name)
    big = json.dumps({"blob": "x" * 2000})
    response = post_reingest(client, message_id, big)
    assert response.status_code == 413
    assert "REPORT_MAX_BYTES" in response.get_data(as_text=True)
    (row,) = audit_rows(db, message_id)
    assert row.outcome == "error" and row.detail["payload_bytes"] == len(big)
    assert nothing_arrives(conn, queue)


# ---- 1. end to end: the pen-test's shutdown, with a real worker --------------------------------


def test_pidbox_shutdown_reingest_leaves_the_worker_running(
    app, db, client, broker, start_worker, unique_names
):
    worker = start_worker(**unique_names)
    message_id = store_message(
        app, db, exchange_name="celery.pidbox", routing_key="", payload=SHUTDOWN
    )
    response = post_reingest(client, message_id, SHUTDOWN, "")
    assert response.status_code == 403
    with pytest.raises(AssertionError):  # it stays up
        wait_for(lambda: not worker.alive, 5, "the worker to stop")
