"""The bulk job page follows its job by itself (htmx from the base template), in real Chromium."""

from __future__ import annotations

import json

import psycopg2
import pytest

from tests.conftest import admin_dsn

pytestmark = pytest.mark.browser


def _execute(dsn: str, sql: str, params=()) -> list:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_job_page_moves_from_pending_to_done_without_a_reload(page, live_server, settings):
    dsn = admin_dsn(settings.POSTGRES_DB)
    [(job_id,)] = _execute(
        dsn,
        "INSERT INTO audit_log (actor, action, target, outcome, detail) "
        "VALUES ('tester', 'bulk-reingest', 'filter status=errored', 'pending', %s) RETURNING id",
        (json.dumps({"total": None}),),
    )
    url = live_server()
    page.goto(f"{url}/actions/jobs/{job_id}")
    page.wait_for_selector("#job-progress[data-outcome='pending']")
    assert "Waiting for a worker" in page.inner_text("#job-progress")
    page.evaluate("() => { window.sameDocument = true; }")

    _execute(
        dsn,
        "UPDATE audit_log SET outcome = 'running', detail = %s WHERE id = %s",
        (json.dumps({"total": 4, "done": 1, "failed": 0}), job_id),
    )
    page.wait_for_selector("#job-progress[data-outcome='running']", timeout=15_000)
    assert page.get_attribute("progress", "value") == "1"

    _execute(
        dsn,
        "UPDATE audit_log SET outcome = 'ok', detail = %s WHERE id = %s",
        (json.dumps({"total": 4, "done": 4, "failed": 0}), job_id),
    )
    page.wait_for_selector("#job-progress[data-outcome='ok']", timeout=15_000)
    assert "4 published, 0 failed, of 4." in page.inner_text("#job-progress")
    assert page.evaluate("() => window.sameDocument === true"), "the page was reloaded"
    # Finished: it stops polling.
    assert page.get_attribute("#job-progress", "hx-trigger") is None
    assert page.console_errors == []
