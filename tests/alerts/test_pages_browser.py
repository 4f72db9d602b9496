"""/alerts in Chromium: an administrator creates a rule, sees the incident it opens, snoozes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import AlertRule, Incident
from tests.alerts.test_evaluation import _evaluate, _store

pytestmark = pytest.mark.browser


def test_create_rule_see_incident_and_snooze(live_server, page, db, pg, settings):
    url = live_server()
    page.goto(url + "/")
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.wait_for_url(url + "/alerts")
    page.get_by_role("link", name="Rules").click()
    page.locator("[data-action=new-rule]").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("user sync alive")
    page.locator("select[name=kind]").select_option("silence")
    page.get_by_role("textbox", name="Message type", exact=True).fill("user-sync")
    page.get_by_role("textbox", name="Threshold", exact=True).fill("10")
    page.get_by_role("textbox", name="E-mail to", exact=True).fill("ops@example.org")
    page.get_by_role("textbox", name="Webhook URL", exact=True).fill(
        "gopher://chat.example.org/hook"
    )
    page.locator("[data-action=save-rule]").click()
    # Refused beside the field, the typed values kept.
    page.locator("[data-error-field=webhook_url]").wait_for()
    assert "http:// or https://" in page.locator("[role=alert]").inner_text()
    assert page.get_by_role("textbox", name="Name", exact=True).input_value() == "user sync alive"
    page.get_by_role("textbox", name="Webhook URL", exact=True).fill(
        "https://chat.example.org/hooks/abc"
    )
    page.locator("[data-action=save-rule]").click()
    page.wait_for_url(url + "/alerts/rules")
    assert page.locator("#alert-rules").inner_text().count("user sync alive") == 1
    rule = db.session.scalars(select(AlertRule)).one()
    assert rule.webhook_url == "https://chat.example.org/hooks/abc"

    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    (incident_id,) = _evaluate(db, settings, now).opened
    page.goto(url + "/alerts")
    row = page.locator(f"tr[data-incident-id='{incident_id}']")
    assert "user-sync has been silent for 30 minutes" in row.inner_text()
    row.locator("[data-action=snooze]").click()
    page.wait_for_url(url + "/alerts")
    assert page.locator(f"tr[data-incident-id='{incident_id}']").get_attribute("data-state") == (
        "snoozed"
    )
    db.session.expire_all()
    assert db.session.get(Incident, incident_id).snoozed_until > now
    # The refused form answered 400 (by design); nothing else went wrong (CSP, scripts).
    assert [e for e in page.console_errors if "400 (BAD REQUEST)" not in e] == []


def test_alerts_pages_fit_a_phone(live_server, browser, db):
    from tests.alerts.test_evaluation import _rule

    rule = _rule(db, name="a rule with a rather long name for a small screen", kind="error_rate")
    db.session.add(
        Incident(
            rule_id=rule.id,
            key="dataset-ingestion",
            title="dataset-ingestion: 97 % of messages failed in the last 15 minutes (97 of 100)",
        )
    )
    db.session.commit()
    url = live_server()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in (
            "/alerts",
            "/alerts/rules",
            "/alerts/rules/new",
            f"/alerts/rules/{rule.id}/edit",
        ):
            page.goto(url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        context.close()
