"""/metrics: bearer token, client network allow-list, bounded message_type label cardinality."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import report_body
from webapp.ingest.writer import ParseOptions, RawReport, write_batch


@pytest.fixture
def configure(app):
    """configure(**fields): replace the session app's settings for this test only."""
    original = app.extensions["settings"]

    def apply(**fields):
        app.extensions["settings"] = dataclasses.replace(original, **fields)

    yield apply
    app.extensions["settings"] = original


def test_metrics_token_is_required_when_configured(client, configure):
    configure(METRICS_TOKEN="s3cret-token")
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "pacer_dashboard" not in missing.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Basic s3cret-token"}).status_code == 401
    )
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert "pacer_dashboard_database_up 1" in ok.get_data(as_text=True)


def test_metrics_network_allow_list(client, configure):
    configure(METRICS_ALLOW_NETWORKS=("10.0.0.0/8", "2001:db8::/32"))
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"})
    assert inside.status_code == 200
    v6 = client.get("/metrics", environ_base={"REMOTE_ADDR": "2001:db8::7"})
    assert v6.status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "11.0.0.1"}).status_code == 403


def test_metrics_network_and_token_both_apply(client, configure):
    configure(METRICS_ALLOW_NETWORKS=("127.0.0.0/8",), METRICS_TOKEN="t0ken")
    assert client.get("/metrics").status_code == 401
    good = {"Authorization": "Bearer t0ken"}
    assert client.get("/metrics", headers=good).status_code == 200
    outside = client.get("/metrics", headers=good, environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert outside.status_code == 403


def test_metrics_open_by_default(client):
    assert client.get("/metrics").status_code == 200


def test_producer_invented_types_do_not_create_unbounded_series(client, db, pg, settings):
    """80 distinct types: at most MAX_MESSAGE_TYPE_LABELS series + one "other", totals kept."""
    from webapp.health.metrics_access import MAX_MESSAGE_TYPE_LABELS

    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    raws = [RawReport(report_body(message_type="dataset-ingestion")) for _ in range(5)]
    raws += [RawReport(report_body(message_type=f"invented-{i:03d}")) for i in range(80)]
    raws += [RawReport(report_body(message_type="other", errored=True)) for _ in range(2)]
    write_batch(pg, raws, options)

    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    series = [
        (s.labels["message_type"], s.value)
        for s in families["pacer_dashboard_reports_ingested"].samples
    ]
    labels = [label for label, _ in series]
    assert len(labels) == len(set(labels)) == MAX_MESSAGE_TYPE_LABELS + 1
    values = {label: int(value) for label, value in series}
    assert values["dataset-ingestion"] == 5  # the most frequent type keeps its own series
    assert sum(values.values()) == 87  # nothing is lost, the rest is under "other"
    assert values["other"] == 87 - 5 - (MAX_MESSAGE_TYPE_LABELS - 1)
    errored = [
        s.value
        for s in families["pacer_dashboard_reports_errored"].samples
        if s.labels["message_type"] == "other"
    ]
    assert errored == [2]


def test_cap_message_types_unit():
    from webapp.health.metrics_access import cap_message_types

    rows = [SimpleNamespace(message_type=f"t{i}", total=i, errored=0) for i in range(1, 6)]
    rows.append(SimpleNamespace(message_type="other", total=100, errored=3))
    capped = cap_message_types(rows, limit=2)
    assert [(t.message_type, t.total, t.errored) for t in capped] == [
        ("t4", 4, 0),
        ("t5", 5, 0),
        ("other", 1 + 2 + 3 + 100, 3),
    ]
    assert [t.message_type for t in cap_message_types(rows[:3], limit=5)] == ["t1", "t2", "t3"]
