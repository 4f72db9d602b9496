"""/stalled in Chromium: groups by stage, the filter form, the link to the trace; no CSP error."""

from __future__ import annotations

import pytest

from tests.stalled.support import STALLED

pytestmark = pytest.mark.browser


def test_filter_group_and_open_the_trace(live_server, page, runs):
    url = live_server()
    page.goto(f"{url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Stalled").click()
    page.wait_for_url(f"{url}/stalled")
    groups = page.locator("section.stalled-group")
    assert [groups.nth(i).get_attribute("data-count") for i in range(groups.count())] == [
        "1",
        "3",
        "2",
    ]
    stage2 = page.locator("section.stalled-group[data-stage=internal-dataset-ingestion]")
    assert "Stopped at stage 2" in stage2.locator("h2").inner_text()
    assert {
        stage2.locator("tr.stalled-run").nth(i).get_attribute("data-hash") for i in range(3)
    } == STALLED[2]

    # Filter: failed runs stopped at stage 3.
    page.select_option("#field-stage", "internal-statistics")
    page.select_option("#field-state", "failed")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/stalled?*stage=internal-statistics*")
    assert page.locator("section.stalled-group").count() == 1
    rows = page.locator("tr.stalled-run")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-hash") == "1a57fa1100000007"
    assert page.locator("#field-state").input_value() == "failed"  # the form keeps the filter
    assert page.locator("#stalled-total").inner_text() == "1"

    # Its trace shows the failed stage.
    rows.first.locator("a.trace-link").click()
    page.wait_for_url("**/messages/*/trace")
    links = page.locator("[data-stage=internal-dataset-links]")
    assert links.get_attribute("data-state") == "failed"

    page.go_back()
    page.locator("details#stalled-explained summary").click()
    assert "latest attempt" in page.locator("details#stalled-explained").inner_text()
    assert page.console_errors == []
