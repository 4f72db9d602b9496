"""The System page (/system): what /healthz says, for administrators only, linked from the header
for them alone; and the page as a person sees it in Chromium (no CSP violation)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from tests.auth.support import ADMIN_GROUP, login

BEAT_DETAIL = {
    "host": "beat-host",
    "pid": 4242,
    "schedule": [
        {
            "name": "tasks-heartbeat",
            "task": "tasks.maintenance.tasks_heartbeat",
            "schedule": "<freq: 1.00 minute>",
            "last_run_at": "2026-12-04T10:00:00+00:00",
            "next_run_at": "2026-12-04T10:01:00+00:00",
            "runs": 12,
        },
        {
            "name": "partitions-maintain",
            "task": "tasks.partitions.maintain_partitions",
            "schedule": "<crontab: 17 3 * * * (m/h/dM/MY/d)>",
            "last_run_at": None,
            "next_run_at": "2026-12-05T03:17:00+00:00",
            "runs": 0,
        },
    ],
}
WORKER_DETAIL = {
    "node": "worker@ingest-1",
    "host": "ingest-1",
    "pid": 31337,
    "started": True,
    "up_seconds": 600,
    "consuming_reports": True,
    "held_unacked": 312,
    "held_pending": 12,
    "held_in_flight": 300,
    "held_retry": 0,
    "oldest_held_seconds": 40,
    "last_batch_at": "2026-12-04T09:59:58+00:00",
    "last_batch_size": 500,
    "last_batch_seconds": 0.25,
    "totals": {"stored": 123456, "duplicates": 3, "quarantined": 2, "batches": 250},
}


@pytest.fixture
def heartbeats(db):
    """A worker holding reports for 40 s, a worker gone quiet, beat with its schedule."""
    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES "
            "('worker:worker@ingest-1', now(), :worker), "
            "('worker:worker@ingest-2', now() - interval '90 seconds', '{\"started\": true}'), "
            "('beat', now(), :beat), ('tasks', now(), '{\"worker\": \"worker@ingest-1\"}')"
        ),
        {"worker": json.dumps(WORKER_DETAIL), "beat": json.dumps(BEAT_DETAIL)},
    )
    db.session.commit()


def test_admin_sees_problems_workers_queues_and_schedule(app, client, settings, heartbeats):
    response = client.get("/system")  # DISABLED_AUTH: everyone is an administrator
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The same problems as /healthz, in the same words.
    problems = client.get("/healthz").get_json()["problems"]
    assert "worker worker@ingest-1 holds 312 reports unacked for 40 s" in problems
    assert "worker worker@ingest-2 not seen for 90 s" in problems
    for problem in problems:
        assert f"<li>{problem}</li>" in html.replace("&#39;", "'")
    # Workers, with what they hold and their last batch.
    assert 'data-worker="worker@ingest-1"' in html and 'data-worker="worker@ingest-2"' in html
    row = re.search(r'<tr class="worker" data-worker="worker@ingest-1">(.*?)</tr>', html, re.S)
    assert row, html
    assert "312" in row.group(1) and "12 pending · 300 in flight · 0 retry" in row.group(1)
    assert "123,456" in row.group(1) and "ingest-1 · pid 31337" in row.group(1)
    # Both queues, with the task heartbeat as the task queue's proof.
    assert f'data-queue="{settings.DASHBOARD_QUEUE}"' in html
    assert f'data-queue="{settings.CELERY_QUEUE}"' in html
    assert "by worker@ingest-1" in html
    # Beat and every schedule entry with its last and next run.
    assert "beat-host · pid 4242" in html
    assert 'data-entry="tasks-heartbeat"' in html and 'data-entry="partitions-maintain"' in html
    assert "2026-12-04 10:01:00" in html and "2026-12-05 03:17:00" in html
    # Linked from the header.
    assert 'href="/system" class="admin-link" aria-current="page"' in html


def test_system_page_without_any_process(client):
    html = client.get("/system").get_data(as_text=True)
    assert "No worker has reported" in html
    assert "Beat has not reported its schedule" in html


@pytest.mark.parametrize(
    ("persona", "expected"), [("anonymous", 302), ("groupless", 403), ("admin", 200)]
)
def test_only_administrators_reach_the_system_page(
    app, client, auth_enabled, make_group, make_user, persona, expected
):
    if persona != "anonymous":
        groups = [make_group(ADMIN_GROUP)] if persona == "admin" else []
        login(client, make_user(persona, groups))
    response = client.get("/system")
    assert response.status_code == expected
    if expected == 302:
        assert "/login" in response.headers["Location"]
    home = client.get("/").get_data(as_text=True)
    assert ('href="/system"' in home) == (persona == "admin")


@pytest.mark.browser
def test_system_page_in_the_browser(live_server, page, heartbeats, tmp_path):
    base = live_server()
    response = page.goto(f"{base}/system")
    assert response.status == 200
    assert page.locator("#problems li").count() >= 2
    assert page.locator("#workers tbody tr").count() == 2
    assert page.locator("#schedule tbody tr").count() == 2
    # Styled by the vendored stylesheet (CSP: no inline style), with nothing refused.
    color = page.locator(".state-bad").first.evaluate("e => getComputedStyle(e).color")
    assert color not in ("", "rgb(0, 0, 0)")
    assert page.console_errors == []
    page.screenshot(path=str(tmp_path / "system.png"), full_page=True)


@pytest.mark.parametrize("persona", ["anonymous", "groupless", "admin", "token"])
def test_healthz_details_only_for_administrators_and_monitoring(
    app, client, auth_enabled, make_group, make_user, heartbeats, persona
):
    """Worker names, hosts, pids and the schedule are for the System page's audience; anyone
    else (load balancers included) gets the verdict and which parts are up."""
    import dataclasses

    headers = {}
    if persona == "token":
        app.extensions["settings"] = dataclasses.replace(
            app.extensions["settings"], METRICS_TOKEN="monitoring-token-123"
        )
        headers["Authorization"] = "Bearer monitoring-token-123"
    elif persona != "anonymous":
        groups = [make_group(ADMIN_GROUP)] if persona == "admin" else []
        login(client, make_user(persona, groups=groups))
    response = client.get("/healthz", headers=headers)
    body = response.get_json()
    assert body["status"] == "degraded"
    text_ = response.get_data(as_text=True)
    if persona in ("admin", "token"):
        assert "worker worker@ingest-1 holds 312 reports unacked for 40 s" in body["problems"]
    else:
        assert set(body) == {"status", "problem_count", "database", "broker", "time", "detail"}
        assert body["problem_count"] >= 2
        for secret in ("ingest-1", "31337", "beat-host", "tasks-heartbeat"):
            assert secret not in text_
