"""The /investigations page in Chromium: expired checks are red, the status filter works."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.investigations import InvestigationCheck

from .conftest import NOW

pytestmark = pytest.mark.browser


def test_expired_checks_stand_out_and_filter_by_status(live_server, page, db):
    for name, status, days in (("INV-EXPIRED", "expired", 31), ("INV-PENDING", "pending", 2)):
        db.session.add(
            InvestigationCheck(
                name=name,
                visit_id="1",
                end_date=NOW - timedelta(days=days),
                first_checked_at=NOW,
                last_checked_at=NOW,
                attempts=1,
                status=status,
            )
        )
    db.session.commit()
    url = live_server()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

    page.goto(url + "/")
    page.get_by_role("link", name="Investigations", exact=True).click()
    page.wait_for_url(url + "/investigations")

    expired = page.locator("tr.check", has_text="INV-EXPIRED")
    pending = page.locator("tr.check", has_text="INV-PENDING")
    red = expired.locator(".check-status").evaluate("e => getComputedStyle(e).color")
    normal = pending.locator(".check-status").evaluate("e => getComputedStyle(e).color")
    assert red != normal
    r, g, b = (int(v) for v in red[red.index("(") + 1 : red.index(")")].split(",")[:3])
    assert r > 150 and g < 100 and b < 100, red
    background = expired.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background != pending.evaluate("e => getComputedStyle(e).backgroundColor")

    page.locator("form.filters select[name=status]").select_option("expired")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/investigations?status=expired*")
    assert page.locator("tr.check").count() == 1
    assert page.locator("tr.check", has_text="INV-EXPIRED").count() == 1
    # Every resource of the pages loaded (Chromium's own favicon probe is not one of them) and
    # nothing tripped the Content-Security-Policy.
    assert missing == []
    assert [e for e in page.console_errors if "Failed to load resource" not in e] == []


def test_unconfigured_page_explains_itself_and_runs_a_dry_run(live_server, page, db):
    url = live_server()
    page.goto(url + "/investigations")
    setup = page.locator(".check-setup")
    for name in ("ICAT_SERVER_URL", "ICAT_USERNAME", "ICAT_PASSWORD", "PANOSC_API_URL"):
        assert setup.locator("code", has_text=name).count() == 1
    assert "Next scheduled run:" in setup.inner_text()
    button = page.get_by_role("button", name="Run a dry run now")
    button.click()
    result = page.locator("#dry-run-result[data-outcome]")
    result.wait_for()
    assert "not configured: set ICAT_SERVER_URL" in result.inner_text()
    # Swapped in place (htmx): still on the page, the button usable again.
    assert page.url == url + "/investigations"
    assert button.is_enabled()
    assert page.console_errors == []
