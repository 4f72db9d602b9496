"""/stats, /errors and their JSON APIs: numbers from the rollups, filters, scope, no scan."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from tests.stats.support import basic_mix, error_body, no_messages_scan

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


@pytest.fixture
def seeded(write_reports):
    """bl13: 3 ok + 2 'not found' errors (ids differ) of dataset-ingestion; bl06: 1 ok user-sync
    + 1 timeout error; one more bl13 error three days ago."""
    ids = {}
    ids["recent"] = write_reports(*basic_mix(), now=NOW)
    ids["old"] = write_reports(
        error_body(error="InvestigationNotFound: Investigation 1999 not found"),
        now=NOW - timedelta(days=3),
    )
    return ids


def test_stats_api_counts_and_percentiles(client, db, seeded):
    with no_messages_scan(db.engine):
        data = client.get("/api/v1/stats?range=24h").get_json()
    s = data["summary"]
    assert (s["total"], s["errored"]) == (7, 3)
    assert s["error_rate"] == pytest.approx(3 / 7)
    assert data["source"] == "rollups"
    # Durations 50, 100, 200, 300, 500, 500, 500 ms: median 300, p95 in the 500 ms bin.
    assert 250 <= s["median_ms"] <= 330
    assert 420 <= s["p95_ms"] <= 500
    assert s["max_ms"] == 500
    assert sorted(data["series"]["types"]) == ["dataset-ingestion", "user-sync"]
    assert sum(data["series"]["types"]["dataset-ingestion"]["total"]) == 5
    groups = data["top_error_groups"]
    assert [g["count"] for g in groups] == [2, 1]
    assert groups[0]["exception_class"] == "InvestigationNotFound"

    week = client.get("/api/v1/stats?range=7d").get_json()
    assert week["summary"]["errored"] == 4
    assert week["top_error_groups"][0]["count"] == 3  # the old one joins the same group


def test_stats_filters(client, seeded):
    data = client.get("/api/v1/stats?range=7d&type=user-sync").get_json()
    assert (data["summary"]["total"], data["summary"]["errored"]) == (2, 1)
    data = client.get("/api/v1/stats?range=7d&instrument=BL13").get_json()
    assert (data["summary"]["total"], data["summary"]["errored"]) == (6, 3)
    since = (NOW - timedelta(days=4)).date().isoformat()
    until = (NOW - timedelta(days=2)).date().isoformat()
    data = client.get(f"/api/v1/stats?since={since}&until={until}").get_json()
    assert data["summary"]["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["range=3w", "since=yesterday", "q=timeout", "investigation=1", "acknowledged=only", "limit=0"],
)
def test_bad_filters_are_400(client, query):
    for path in ("/api/v1/stats", "/api/v1/error-groups"):
        if query == "limit=0" and path == "/api/v1/stats":
            continue
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.data)
        assert response.get_json()["message"]


def test_pages_render_without_scanning_messages(client, db, seeded):
    with no_messages_scan(db.engine):
        stats = client.get("/stats?range=7d")
        errors = client.get("/errors?range=7d&acknowledged=shown")
    assert stats.status_code == 200
    assert errors.status_code == 200
    html = errors.get_data(as_text=True)
    assert "InvestigationNotFound" in html
    assert "Investigation &lt;name&gt; not found" in html
    assert 'id="errors-data"' in html
    assert "/?fingerprint=v1" in html or "fingerprint=v1%3A" in html
    page = stats.get_data(as_text=True)
    assert 'id="stats-data"' in page and 'data-tile="p95"' in page
    assert "<script>" not in page  # CSP: no inline script


def test_error_groups_hide_acknowledged_by_default(client, db, pg, seeded):
    from tests.factories import ack

    groups = client.get("/api/v1/error-groups?range=7d").get_json()["items"]
    not_found = next(g for g in groups if g["exception_class"] == "InvestigationNotFound")
    assert not_found["count"] == 3
    ack(pg, seeded["recent"][3:5])  # the two recent "not found" errors
    groups = client.get("/api/v1/error-groups?range=7d").get_json()["items"]
    not_found = next(g for g in groups if g["exception_class"] == "InvestigationNotFound")
    assert (not_found["count"], not_found["acknowledged"]) == (1, 2)
    shown = client.get("/api/v1/error-groups?range=24h&acknowledged=shown").get_json()["items"]
    assert next(g for g in shown if g["exception_class"] == "InvestigationNotFound")["count"] == 2
    hidden = client.get("/api/v1/error-groups?range=24h").get_json()["items"]
    assert [g["exception_class"] for g in hidden] == ["TimeoutError"]
    # Un-acknowledging brings them back (the trigger works both ways).
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE messages SET acknowledged_at = NULL WHERE id = ANY(%s)",
            (seeded["recent"][3:5],),
        )
    pg.commit()
    hidden = client.get("/api/v1/error-groups?range=24h").get_json()["items"]
    assert sorted(g["count"] for g in hidden) == [1, 2]


def test_errors_page_offers_the_bulk_actions_with_the_group_filter(client, seeded):
    html = client.get("/errors?range=24h&type=dataset-ingestion").get_data(as_text=True)
    assert 'action="/actions/acknowledge"' in html
    assert 'action="/actions/reingest"' in html
    assert "Acknowledge all (2)" in html
    assert 'name="type" value="dataset-ingestion"' in html
    # Submitting the group's form reaches the action's preview, which counts the same messages.
    form = re.search(r'<form method="get" action="/actions/acknowledge">(.*?)</form>', html, re.S)
    fields = re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1))
    assert ("mode", "acknowledge") in fields and any(k == "until" for k, _ in fields)
    preview = client.get("/actions/acknowledge", query_string=[(k, unescape(v)) for k, v in fields])
    assert preview.status_code == 200
    assert 'data-count="2"' in preview.get_data(as_text=True)
