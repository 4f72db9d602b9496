"""The re-ingest editor in Chromium: indented payload in a full-width editor, validation as you
type, a review step with the diff, one confirmation (its button disabled once clicked), then the
new report linked when it arrives. Dark theme included; no CSP violation."""

from __future__ import annotations

import pytest

from tests.factories import store_message

from .test_reingest import get_one

pytestmark = pytest.mark.browser


def test_edit_review_publish_and_follow_the_new_report(app, db, page, live_server, broker):
    conn, exchange, queue = broker
    message_id = store_message(
        app,
        db,
        exchange_name=exchange.name,
        routing_key="dataset.ingest",
        payload='{"investigation":"2022097034","dataset":"mx_01"}',
    )
    url = live_server(
        REINGEST_EXCHANGES=exchange.name, REINGEST_RMQ_USERNAME="", REINGEST_RMQ_PASSWORD=""
    )
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{url}/messages/{message_id}/reingest")
    # Dark theme: the editor follows it.
    page.locator("[data-theme-toggle]").click()
    if page.evaluate("document.documentElement.getAttribute('data-theme')") != "dark":
        page.locator("[data-theme-toggle]").click()
    editor = page.locator("textarea#payload")
    background = editor.evaluate("e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert r + g + b < 200, background

    assert editor.input_value() == ('{\n  "investigation": "2022097034",\n  "dataset": "mx_01"\n}')
    width = editor.evaluate("e => e.getBoundingClientRect().width")
    container = editor.evaluate("e => e.closest('main, body').getBoundingClientRect().width")
    assert width > 0.8 * container and width > 900, (width, container)
    assert editor.evaluate("e => getComputedStyle(e).fontFamily").lower().find("mono") >= 0

    validity = page.locator("#payload-validity")
    review = page.locator("[data-action=reingest-review]")
    assert validity.get_attribute("data-state") == "valid"
    editor.fill('{\n  "investigation": "2022097034",\n  "dataset": \n}')
    page.wait_for_selector("#payload-validity[data-state=invalid]")
    assert "Not well-formed JSON" in validity.inner_text()
    assert review.is_disabled()
    editor.fill('{\n  "investigation": "2022097034",\n  "dataset": "mx_02"\n}')
    page.wait_for_selector("#payload-validity[data-state=valid]")
    review.click()

    page.wait_for_selector("pre.diff")
    assert page.locator(".diff-del").inner_text() == '-  "dataset": "mx_01"'
    assert page.locator(".diff-add").inner_text() == '+  "dataset": "mx_02"'
    publish = page.locator("[data-action=reingest-submit]")
    # A double click submits once: the buttons are disabled on the first submit.
    publish.dblclick()
    page.wait_for_selector("[data-outcome=ok]")
    assert page.locator("textarea#payload").count() == 0
    delivered = get_one(conn, queue)
    assert '"mx_02"' in delivered.body
    import queue as stdlib_queue

    with pytest.raises(stdlib_queue.Empty):
        get_one(conn, queue, timeout=1)

    # PACER's new report arrives: the result links it without a reload.
    page.evaluate("() => { window.sameDocument = true; }")
    new_id = store_message(
        app,
        db,
        exchange_name=exchange.name,
        routing_key="dataset.ingest",
        headers={"x-dashboard-reingest-of": str(message_id)},
    )
    link = page.locator(f"#reingest-arrivals a[data-arrival='{new_id}']")
    link.wait_for(timeout=10_000)
    assert page.evaluate("() => window.sameDocument") is True
    link.click()
    page.wait_for_url(f"{url}/messages/{new_id}")
    assert page.console_errors == []
