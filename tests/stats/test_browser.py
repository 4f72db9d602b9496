"""/stats and /errors in Chromium on demo data: the charts draw, the numbers show, the links
lead to the matching messages, and nothing trips the Content-Security-Policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from webapp.demo import generate_reports

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_data(write_reports):
    """Demo reports received over the last three days (several hourly buckets, ~20 % errors)."""
    now = datetime.now(UTC)
    total = 0
    for day in range(3):
        bodies = [
            json.dumps(r).encode() for r in generate_reports(120, seed=100 + day, error_rate=0.2)
        ]
        write_reports(*bodies, now=now - timedelta(days=day, hours=day))
        total += len(bodies)
    return total


def test_stats_charts_render_on_demo_data(live_server, page, demo_data):
    url = live_server()
    page.goto(url + "/stats?range=7d")
    # uPlot draws each chart into a <canvas> inside its container.
    page.wait_for_selector("#chart-volume canvas")
    page.wait_for_selector("#chart-error-rate canvas")
    for chart in ("#chart-volume", "#chart-error-rate"):
        width = page.locator(f"{chart} canvas").first.evaluate("c => c.width")
        assert width > 100, chart
        # One legend entry per message type (plus the x axis).
        assert page.locator(f"{chart} .u-legend .u-series").count() >= 3, chart
    messages = page.locator("[data-tile=messages] .tile-value").inner_text()
    assert int(messages.replace(",", "")) == demo_data
    assert page.locator("[data-tile=error-rate] .tile-value").inner_text().endswith("%")
    # The heatmap cells are coloured by their rate.
    cell = page.locator("#heatmap td.heat").first
    assert cell.evaluate("e => getComputedStyle(e).backgroundColor") not in ("", "rgba(0, 0, 0, 0)")
    assert page.locator("table.top-groups tbody tr").count() >= 1
    assert page.console_errors == []


def test_errors_page_draws_sparklines_and_links_to_the_group(live_server, page, demo_data):
    url = live_server()
    page.goto(url + "/errors?range=7d")
    groups = page.locator("tr.error-group")
    assert groups.count() >= 2
    page.wait_for_selector("tr.error-group [data-sparkline] svg polyline")
    assert page.locator("[data-sparkline] svg").count() == groups.count()
    first = groups.first
    count = int(first.locator("td.num strong").inner_text().replace(",", ""))
    first.get_by_role("link", name="Messages").click()
    page.wait_for_url("**/?*fingerprint=v1*")
    page.wait_for_selector("#message-rows tr.msg")
    shown = page.locator("#message-rows tr.msg").count()
    assert shown == min(count, 50)
    assert page.console_errors == []
