"""/metrics through prometheus-client: parsed as Prometheus and OpenMetrics text, names and labels
unchanged, odd label values escaped, request latency per route (consistent across gunicorn's
worker processes) and ingest batch durations from the workers' heartbeat rows."""

from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.factories import report_body
from tests.processes import wait_for
from webapp.health import batch_histogram
from webapp.ingest.writer import ParseOptions, RawReport, write_batch

#: Every family /metrics had before prometheus-client, with its type and label names.
EXISTING = {
    "pacer_dashboard_database_up": ("gauge", set()),
    "pacer_dashboard_reports_ingested": ("counter", {"message_type"}),
    "pacer_dashboard_reports_errored": ("counter", {"message_type"}),
    "pacer_dashboard_reports_quarantined": ("counter", set()),
    "pacer_dashboard_quarantine_waiting": ("gauge", set()),
    "pacer_dashboard_ingest_batch_seconds": ("gauge", {"worker"}),
    "pacer_dashboard_ingest_batch_size": ("gauge", {"worker"}),
    "pacer_dashboard_ingest_last_batch_timestamp_seconds": ("gauge", {"worker"}),
    "pacer_dashboard_heartbeat_age_seconds": ("gauge", {"heartbeat"}),
    "pacer_dashboard_worker_reports_held": ("gauge", {"worker"}),
    "pacer_dashboard_report_queue_messages": ("gauge", set()),
    "pacer_dashboard_report_queue_consumers": ("gauge", set()),
    "pacer_dashboard_partitions": ("gauge", set()),
}

ODD_TYPE = 'we"ird\\type\nwith "quotes"'


def _families(body: str, parser=text_string_to_metric_families) -> dict:
    return {f.name: f for f in parser(body)}


def _value(family, sample_name: str | None = None, **labels) -> float:
    matches = [
        s.value
        for s in family.samples
        if (sample_name is None or s.name == sample_name)
        and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (labels, family.samples)
    return matches[0]


def _stat_row(db, message_type: str, total: int, errored: int, hours_ago: int = 0) -> None:
    db.session.execute(
        text(
            "INSERT INTO message_stats (bucket, message_type, instrument, total, errored, "
            "sum_processing_ms, max_processing_ms, timed) VALUES "
            "(date_trunc('hour', now()) - make_interval(hours => :h), :t, '', :n, :e, 0, 0, 0)"
        ),
        {"t": message_type, "n": total, "e": errored, "h": hours_ago},
    )
    db.session.commit()


@pytest.fixture
def with_worker_rows(db):
    durations = batch_histogram.BatchDurations()
    for seconds in (0.004, 0.03, 0.03, 0.7, 100.0):
        durations.observe(seconds)
    detail = {
        "held_unacked": 3,
        "host": "h",
        "pid": 42,
        "last_batch_seconds": 0.25,
        batch_histogram.KEY: durations.snapshot(),
    }
    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES "
            "('worker:w1@h', now(), CAST(:d AS jsonb)), "
            """('worker:old@h', now(), '{"held_unacked": 0}'), """
            """('ingest:h:42', now(), '{"last_batch_size": 5}')"""
        ),
        {"d": json.dumps(detail)},
    )
    db.session.commit()


def test_metrics_parse_with_the_existing_names_types_and_labels(
    client, db, pg, settings, with_worker_rows
):
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    write_batch(pg, [RawReport(report_body()), RawReport(b"junk")], options)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = _families(response.get_data(as_text=True))
    for name, (kind, labels) in EXISTING.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) == labels, (name, sample)
    ingested = families["pacer_dashboard_reports_ingested"]
    assert _value(ingested, message_type="dataset-ingestion") == 1
    assert ingested.samples[0].name == "pacer_dashboard_reports_ingested_total"
    assert _value(families["pacer_dashboard_reports_quarantined"]) == 1
    assert _value(families["pacer_dashboard_database_up"]) == 1
    assert _value(families["pacer_dashboard_worker_reports_held"], worker="w1@h") == 3
    assert _value(families["pacer_dashboard_ingest_batch_size"], worker="h:42") == 5
    # The last batch's duration of ingest:h:42 comes from the same process's worker row.
    assert _value(families["pacer_dashboard_ingest_batch_seconds"], worker="h:42") == 0.25


def test_openmetrics_is_negotiated(client, db, with_worker_rows):
    _stat_row(db, "t1", 10, 2)
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    body = response.get_data(as_text=True)
    assert body.endswith("# EOF\n")
    families = _families(body, openmetrics_families)
    assert _value(families["pacer_dashboard_reports_ingested"], message_type="t1") == 10
    assert families["pacer_dashboard_ingest_batch_duration_seconds"].type == "histogram"
    # Plain text for anyone else (Prometheus before 2.5, curl).
    plain = client.get("/metrics", headers={"Accept": "text/html"})
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert "# EOF" not in plain.get_data(as_text=True)


def test_odd_message_types_are_escaped_in_both_formats(client, db):
    _stat_row(db, ODD_TYPE, 4, 1)
    for accept, parser in (
        ("", text_string_to_metric_families),
        ("application/openmetrics-text; version=1.0.0", openmetrics_families),
    ):
        body = client.get("/metrics", headers={"Accept": accept}).get_data(as_text=True)
        assert 'with \\"quotes\\"' in body  # escaped on the wire, no raw newline in a label
        families = _families(body, parser)
        assert _value(families["pacer_dashboard_reports_ingested"], message_type=ODD_TYPE) == 4
        assert _value(families["pacer_dashboard_reports_errored"], message_type=ODD_TYPE) == 1


def test_last_seen_per_type_within_the_label_cap(client, db, app):
    from webapp.health import metrics_access

    _stat_row(db, "fresh", 5, 0)
    _stat_row(db, "fresh", 5, 0, hours_ago=30)
    _stat_row(db, "silent", 7, 0, hours_ago=48)
    for i in range(metrics_access.MAX_MESSAGE_TYPE_LABELS):
        _stat_row(db, f"busy-{i:02d}", 100, 0, hours_ago=72)
    _stat_row(db, "rare", 1, 0, hours_ago=5)
    now = db.session.execute(text("SELECT extract(epoch FROM now())")).scalar_one()
    db.session.rollback()
    families = _families(client.get("/metrics").get_data(as_text=True))
    seen = families["pacer_dashboard_message_type_last_seen_timestamp_seconds"]
    assert len(seen.samples) == metrics_access.MAX_MESSAGE_TYPE_LABELS + 1
    # The 50 busiest have their own series; "fresh", "silent" and "rare" are summed as "other",
    # whose last seen is the latest of them (this hour: now).
    assert _value(seen, message_type="busy-00") == pytest.approx(float(now) - 71 * 3600, abs=3600)
    assert _value(seen, message_type="other") == pytest.approx(float(now), abs=5)
    assert {s.labels["message_type"] for s in seen.samples} == {
        s.labels["message_type"] for s in families["pacer_dashboard_reports_ingested"].samples
    }


def test_last_seen_of_a_silent_type_is_its_latest_hour(client, db):
    _stat_row(db, "silent", 7, 0, hours_ago=48)
    _stat_row(db, "silent", 7, 0, hours_ago=50)
    _stat_row(db, "live", 1, 0)
    now = float(db.session.execute(text("SELECT extract(epoch FROM now())")).scalar_one())
    db.session.rollback()
    seen = _families(client.get("/metrics").get_data(as_text=True))[
        "pacer_dashboard_message_type_last_seen_timestamp_seconds"
    ]
    # The end of the hour 48 hours ago: between 47 and 48 hours before now.
    assert now - 48 * 3600 <= _value(seen, message_type="silent") <= now - 47 * 3600
    assert _value(seen, message_type="live") == pytest.approx(now, abs=5)


def _latency_counts(client) -> dict[tuple[str, str], float]:
    families = _families(client.get("/metrics").get_data(as_text=True))
    latency = families["pacer_dashboard_http_request_duration_seconds"]
    assert latency.type == "histogram"
    return {
        (s.labels["route"], s.labels["method"]): s.value
        for s in latency.samples
        if s.name.endswith("_count")
    }


def test_request_latency_is_labelled_by_route_not_path(client, db):
    # The registry lives as long as the process (the whole test session here): compare counts.
    before = _latency_counts(client)
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page-1234567")
    # Refused before the view by the CSRF check (a before_request function): timed all the same.
    assert client.post("/messages/7/acknowledge").status_code == 400
    counts = _latency_counts(client)

    def added(route: str, method: str) -> float:
        return counts.get((route, method), 0) - before.get((route, method), 0)

    assert added("/healthz", "GET") == 3
    assert added("unmatched", "GET") == 1
    assert added("/messages/<int:message_id>/acknowledge", "POST") == 1
    assert not [r for r, _ in counts if "1234567" in r]


def test_ingest_batch_durations_come_from_the_worker_heartbeats(client, db, with_worker_rows):
    families = _families(client.get("/metrics").get_data(as_text=True))
    histogram = families["pacer_dashboard_ingest_batch_duration_seconds"]
    assert histogram.type == "histogram"
    samples = {
        (s.name, s.labels.get("le")): s.value
        for s in histogram.samples
        if s.labels["worker"] == "w1@h"
    }
    base = "pacer_dashboard_ingest_batch_duration_seconds"
    assert samples[(base + "_bucket", "0.01")] == 1
    assert samples[(base + "_bucket", "0.05")] == 3
    assert samples[(base + "_bucket", "1.0")] == 4
    assert samples[(base + "_bucket", "60.0")] == 4
    assert samples[(base + "_bucket", "+Inf")] == 5
    assert samples[(base + "_count", None)] == 5
    assert samples[(base + "_sum", None)] == pytest.approx(100.764)
    # A worker row without the histogram (an older worker) has no series, and no error.
    assert not [s for s in histogram.samples if s.labels["worker"] == "old@h"]


@pytest.mark.parametrize(
    "bad",
    [
        {"le": [0.1], "cumulative": [3, 2], "sum": 1},  # decreasing
        {"le": [0.1, 1], "cumulative": [1, 2], "sum": 1},  # one count short
        {"le": ["x"], "cumulative": [1, 1], "sum": 1},
        {"le": [0.1], "cumulative": [1, 1]},
        "nonsense",
    ],
)
def test_malformed_histograms_in_heartbeats_are_ignored(bad):
    assert batch_histogram.from_detail({batch_histogram.KEY: bad}) is None


@pytest.mark.slow
def test_request_latency_adds_up_across_gunicorn_workers(live_server, db, tmp_path):
    """Two gunicorn workers both answer requests: every scrape counts all of them, whichever
    worker serves it (per-process registries would each count only their own)."""
    directory = tmp_path / "prometheus-multiproc"
    url = live_server(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory))
    for _ in range(40):
        # A fresh connection per request, so both workers answer some of them. The listening
        # socket is open before the workers have loaded the app (seconds on a busy machine):
        # the first requests wait for that.
        response = requests.get(url + "/healthz", timeout=60, headers={"Connection": "close"})
        assert response.status_code == 200
    files = list(directory.glob("histogram_*.db"))
    assert len(files) == 2, files  # both workers observed requests
    for _ in range(12):
        body = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
        latency = _families(body)["pacer_dashboard_http_request_duration_seconds"]
        count = latency.name + "_count"
        assert _value(latency, count, route="/healthz", method="GET") == 40, body


@pytest.mark.slow
def test_a_real_worker_reports_its_batch_durations(
    client, db, settings, unique_names, start_worker
):
    from kombu import Connection, Exchange, Producer

    start_worker(**unique_names)
    with Connection(settings.broker_url, connect_timeout=5) as conn:
        producer = Producer(
            conn.channel(),
            exchange=Exchange(unique_names["DASHBOARD_EXCHANGE"], type="direct", durable=True),
        )
        for _ in range(3):
            producer.publish(
                report_body(),
                routing_key=unique_names["DASHBOARD_ROUTING_KEY"],
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )

    def batches() -> float:
        db.session.rollback()
        histogram = _families(client.get("/metrics").get_data(as_text=True)).get(
            "pacer_dashboard_ingest_batch_duration_seconds"
        )
        return sum(s.value for s in histogram.samples if s.name.endswith("_count"))

    wait_for(lambda: batches() >= 1, 30, "a batch duration on /metrics")
