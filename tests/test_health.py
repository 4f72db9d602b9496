"""/healthz and /metrics on the real services."""

from __future__ import annotations

from tests.conftest import report_body
from webapp.ingest.writer import ParseOptions, RawReport, write_batch


def _declare_report_queue(settings) -> None:
    """What the first worker does at start."""
    from kombu import Connection, Exchange, Queue

    exchange = Exchange(settings.DASHBOARD_EXCHANGE, type="direct", durable=True)
    queue = Queue(settings.DASHBOARD_QUEUE, exchange, settings.DASHBOARD_ROUTING_KEY, durable=True)
    with Connection(settings.broker_url, connect_timeout=5) as conn:
        queue(conn.default_channel).declare()


def test_healthz_reports_components(client, db, settings):
    from tasks.maintenance import beat_heartbeat

    _declare_report_queue(settings)
    beat_heartbeat()
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["database"]["partitions_ahead"] >= settings.MESSAGE_PARTITIONS_AHEAD
    assert body["database"]["default_partition_rows"] == 0
    assert body["status"] == "ok", body["problems"]


def test_healthz_is_degraded_without_beat_and_reports_last_ingest(client, db, pg, settings):
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    write_batch(pg, [RawReport(report_body())], options)
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert any("beat" in problem for problem in body["problems"])
    assert body["database"]["last_ingest_at"]


def test_healthz_degraded_not_down_before_any_worker_declared_the_queue(app, db):
    from dataclasses import replace

    from tasks.maintenance import beat_heartbeat

    beat_heartbeat()
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
