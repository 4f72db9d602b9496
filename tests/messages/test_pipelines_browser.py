"""Trace or related messages, in Chromium (issue 16, item 6); no CSP violation."""

from __future__ import annotations

import pytest

from tests.factories import report_body as body

pytestmark = pytest.mark.browser


def test_trace_only_where_a_pipeline_exists(live_server, page, write_reports):
    digest = "9999999999999999"
    sync, twin, stage1, stage2 = write_reports(
        body(message_type="user-sync", hash="aaaaaaaaaaaaaaaa"),
        body(message_type="user-sync", hash="aaaaaaaaaaaaaaaa"),
        body(message_type="dataset-ingestion", hash=digest),
        body(message_type="internal-dataset-ingestion", hash=digest, errored=True),
    )
    url = live_server()
    page.goto(f"{url}/messages/{sync}")
    assert page.locator("[data-action=trace]").count() == 0
    page.locator("[data-action=related]").click()
    page.wait_for_url(f"{url}/messages/{sync}/related")
    page.locator(f"li[data-id='{twin}'] a").click()
    page.wait_for_url(f"{url}/messages/{twin}")

    page.goto(f"{url}/messages/{stage1}")
    page.locator("[data-action=trace]").click()
    page.wait_for_url(f"{url}/messages/{stage1}/trace")
    later = page.locator("[data-stage=internal-statistics]")
    assert later.get_attribute("data-state") == "not-reached"
    assert "NOT REACHED" in later.locator(".stage-state").inner_text().upper()
    assert "an earlier stage failed" in later.inner_text()
    assert page.console_errors == []
