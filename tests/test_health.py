"""/healthz and /metrics on the real services."""

from __future__ import annotations

from tests.factories import report_body
from webapp.ingest.writer import ParseOptions, RawReport, write_batch


def _declare_report_queue(settings) -> None:
    """What the first worker does at start."""
    from kombu import Connection, Exchange, Queue

    exchange = Exchange(settings.DASHBOARD_EXCHANGE, type="direct", durable=True)
    queue = Queue(settings.DASHBOARD_QUEUE, exchange, settings.DASHBOARD_ROUTING_KEY, durable=True)
    with Connection(settings.broker_url, connect_timeout=5) as conn:
        queue(conn.default_channel).declare()


def test_healthz_reports_components(client, db, settings):
    """No worker and no beat here: each is named for itself (tests/health has the healthy case
    with real processes)."""
    from tasks.maintenance import tasks_heartbeat

    _declare_report_queue(settings)
    tasks_heartbeat()
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["database"]["partitions_ahead"] >= settings.MESSAGE_PARTITIONS_AHEAD
    assert body["database"]["default_partition_rows"] == 0
    assert body["status"] == "degraded"
    assert body["problems"] == [
        f"no worker consumes the report queue {settings.DASHBOARD_QUEUE} (0 reports waiting)",
        "beat has never ticked: no heartbeat from beat (is beat running?)",
    ]
    assert body["report_queue"]["name"] == settings.DASHBOARD_QUEUE
    assert body["report_queue"]["consumers"] == 0
    assert body["task_queue"]["name"] == settings.CELERY_QUEUE
    assert body["tasks_heartbeat"]["fresh"] is True
    assert body["workers"] == [] and body["schedule"] == []


def test_healthz_is_degraded_without_beat_and_reports_last_ingest(client, db, pg, settings):
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    write_batch(pg, [RawReport(report_body())], options)
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert any("beat" in problem for problem in body["problems"])
    assert body["database"]["last_ingest_at"]


def test_healthz_degraded_not_down_before_any_worker_declared_the_queue(app, db):
    from dataclasses import replace

    settings = app.extensions["settings"]
    app.extensions["settings"] = replace(settings, DASHBOARD_QUEUE="no-worker-declared-this")
    try:
        response = app.test_client().get("/healthz")
    finally:
        app.extensions["settings"] = settings
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "degraded"
    assert body["broker"] == {"ok": True, "report_queue_exists": False, "report_consumers": 0}
    assert any("no-worker-declared-this" in problem for problem in body["problems"])


def test_healthz_503_when_broker_is_unreachable(app, db):
    from dataclasses import replace

    settings = app.extensions["settings"]
    app.extensions["settings"] = replace(settings, RMQ_PORT=1)
    try:
        response = app.test_client().get("/healthz")
    finally:
        app.extensions["settings"] = settings
    assert response.status_code == 503
    assert response.get_json()["broker"]["ok"] is False


def test_metrics_prometheus_text(client, db, pg, settings):
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    write_batch(pg, [RawReport(report_body()), RawReport(b"junk")], options)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'pacer_dashboard_reports_ingested_total{message_type="dataset-ingestion"} 1' in text
    assert "pacer_dashboard_reports_quarantined_total 1" in text
    assert "# TYPE pacer_dashboard_report_queue_messages gauge" in text


def _with_settings(app, **changes):
    """Context: the session app with some settings replaced."""
    import contextlib
    from dataclasses import replace

    @contextlib.contextmanager
    def swapped():
        original = app.extensions["settings"]
        app.extensions["settings"] = replace(original, **changes)
        try:
            yield app.extensions["settings"]
        finally:
            app.extensions["settings"] = original

    return swapped()


def test_report_unacked_comes_from_the_management_api(app, db, settings):
    from tests.processes import wait_for

    _declare_report_queue(settings)
    client = app.test_client()
    # The management statistics of a new queue appear within a few seconds.
    body = wait_for(
        lambda: (
            (b := client.get("/healthz").get_json())["report_queue"]["unacked_source"]
            == "management"
            and b
        ),
        15,
        "the management API's unacked count",
        0.5,
    )
    assert body["management"]["reachable"] is True
    assert body["report_queue"]["unacked"] == 0


def test_report_unacked_falls_back_to_live_workers_when_management_is_unreachable(app, db):
    from sqlalchemy import text

    from tests.processes import free_port

    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES "
            """('worker:a@h', now(), '{"held_unacked": 7, "started": true}'), """
            """('worker:b@h', now() - interval '10 minutes', '{"held_unacked": 100}')"""
        )
    )
    db.session.commit()
    with _with_settings(app, RMQ_MANAGEMENT_PORT=free_port()) as settings:
        _declare_report_queue(settings)
        response = app.test_client().get("/healthz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["management"]["reachable"] is False
    # Only the live worker's held reports are still held (the broker requeued the other's).
    assert body["report_queue"]["unacked"] == 7
    assert body["report_queue"]["unacked_source"] == "workers"
    assert "worker b@h not seen for 10 min" in body["problems"]
    assert not [p for p in body["problems"] if "management" in p]


def test_metrics_show_heartbeat_ages_and_held_reports(client, db):
    from sqlalchemy import text

    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES "
            """('worker:a@h', now(), '{"held_unacked": 7}'), ('beat', now(), '{}')"""
        )
    )
    db.session.commit()
    body = client.get("/metrics").get_data(as_text=True)
    assert 'pacer_dashboard_worker_reports_held{worker="a@h"} 7' in body
    assert 'pacer_dashboard_heartbeat_age_seconds{heartbeat="beat"}' in body
