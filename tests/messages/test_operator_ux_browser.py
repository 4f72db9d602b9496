"""Operator experience in Chromium (issue 16 items 4, 5, 10, 11): a bad filter value is marked next
to its field and the rest is kept; date pickers; every page usable at 390 px in light and dark;
/admin wears the dashboard's header and theme; /help, keyboard shortcuts and empty states. No page
trips the Content-Security-Policy."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import report_body as body

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@contextmanager
def open_page(browser, **options):
    """A page in its own context (viewport, colour scheme); console errors on `console_errors`."""
    context = browser.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    try:
        yield page
    finally:
        context.close()


def csp_errors(page) -> list[str]:
    return [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e]


@pytest.fixture
def some_messages(write_reports):
    digest = "abcabcabcabc0001"
    ids = {"instrument": "BL13", "investigation": "2022097034", "dataset": "mx_77"}
    first, second = write_reports(
        body(message_type="dataset-ingestion", object_identifiers=ids, hash=digest),
        body(
            message_type="internal-dataset-links",
            object_identifiers=ids,
            hash=digest,
            errored=True,
            error_message={"callback_func_links": "ICATObjectExistsError: " + "x" * 300},
        ),
    )
    return first, second


# ---- item 4: bad input keeps the user's work -----------------------------------------------------
def test_a_bad_date_is_marked_next_to_its_field_and_everything_else_is_kept(
    live_server, page, some_messages
):
    url = live_server()
    response = page.goto(
        url + "/?since=2026-13-45&status=errored&routing_key=rk.x&until=2999-04-01&q=ICATObject"
    )
    assert response.status == 400
    # The list page itself, not a separate error page: the form with every other filter.
    assert page.locator(".error-page").count() == 0
    since = page.locator("#field-since")
    assert since.get_attribute("aria-invalid") == "true"
    assert since.input_value() == "2026-13-45"  # what was typed, to correct it
    message = page.locator("#error-since")
    assert "ISO date" in message.inner_text() and "2026-13-45" in message.inner_text()
    assert since.get_attribute("aria-describedby") == "error-since"
    # The message sits in the field's own label, next to the input.
    assert page.locator("label:has(#field-since) #error-since").count() == 1
    assert page.locator("#filter-errors").is_visible()
    assert page.locator("#field-status").input_value() == "errored"
    assert page.locator("#field-routing_key").input_value() == "rk.x"
    assert page.locator("#field-q").input_value() == "ICATObject"
    # The other date is a picker holding the same moment (a bare `until` date: next midnight).
    until = page.locator("#field-until")
    assert until.get_attribute("type") == "datetime-local"
    assert until.input_value() == "2999-04-02T00:00"
    assert page.locator("[aria-invalid=true]").count() == 1

    # Correcting the field and submitting applies everything.
    since.fill("2020-01-01")
    page.fill("#field-routing_key", "")
    with page.expect_navigation() as nav:
        page.click("form.filters button[type=submit]")
    assert nav.value.status == 200
    assert "since=2020-01-01" in page.url and "status=errored" in page.url
    assert "q=ICATObject" in page.url
    assert page.locator("#message-rows tr.msg").count() == 1
    assert page.locator("[aria-invalid=true]").count() == 0
    assert page.locator("#field-since").get_attribute("type") == "datetime-local"
    assert page.locator("#field-since").input_value() == "2020-01-01T00:00"
    assert not csp_errors(page), page.console_errors


def test_the_date_pickers_filter_and_accept_the_url_formats(live_server, page, some_messages):
    url = live_server()
    page.goto(url + "/?since=2026-03-31T10:15:00Z")
    assert page.locator("#field-since").input_value() == "2026-03-31T10:15"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#field-since", tomorrow)  # the picker's own format
    with page.expect_navigation() as nav:
        page.click("form.filters button[type=submit]")
    assert nav.value.status == 200
    assert page.locator("#message-rows tr.msg").count() == 0
    page.fill("#field-since", "2000-01-01T00:00")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert page.locator("#message-rows tr.msg").count() == 2
    assert not csp_errors(page), page.console_errors


@pytest.mark.parametrize("path", ["/stats", "/errors"])
def test_stats_and_errors_mark_the_bad_field_and_keep_the_rest(
    live_server, page, some_messages, path
):
    url = live_server()
    response = page.goto(url + path + "?until=yesterday&instrument=bl13&since=2026-01-01")
    assert response.status == 400
    assert page.locator(".error-page").count() == 0
    until = page.locator("#field-until")
    assert until.get_attribute("aria-invalid") == "true"
    assert until.input_value() == "yesterday"
    assert "yesterday" in page.locator("label:has(#field-until) #error-until").inner_text()
    assert page.locator("#field-instrument").input_value() == "bl13"
    assert page.locator("#field-since").input_value() == "2026-01-01T00:00"
    assert page.locator("#field-since").get_attribute("type") == "datetime-local"
    until.fill("")
    with page.expect_navigation() as nav:
        page.click("form.filters button[type=submit]")
    assert nav.value.status == 200
    assert "instrument=bl13" in page.url and "since=2026-01-01" in page.url
    assert not csp_errors(page), page.console_errors


# ---- item 5: narrow screens ---------------------------------------------------------------------
def assert_fits_and_header_reachable(page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what}: page is {width}px wide"
    for selector in (".topbar nav a >> nth=0", ".topbar nav a >> text=Help", ".theme-toggle"):
        loc = page.locator(selector)
        assert loc.is_visible(), (what, selector)
        box = loc.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (what, selector, box)
    admin = page.locator(".topbar a.admin-link >> text=Admin")
    assert admin.is_visible(), what
    box = admin.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"], (what, box)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone(live_server, browser, some_messages, scheme):
    url = live_server()
    first, second = some_messages
    pages = {
        "list": "/?acknowledged=shown",
        "detail": f"/messages/{second}",
        "trace": f"/messages/{first}/trace",
        "errors": "/errors",
        "stats": "/stats",
        "help": "/help",
        "investigations": "/investigations",
        "system": "/system",
        "admin": "/admin/",
        "admin groups": "/admin/groups/",
    }
    with open_page(browser, viewport=PHONE, color_scheme=scheme) as page:
        for what, path in pages.items():
            response = page.goto(url + path)
            assert response.status == 200, what
            assert_fits_and_header_reachable(page, what)
        # Tables scroll inside their own box.
        page.goto(url + "/?acknowledged=shown")
        box = page.locator(".table-scroll:has(table.messages)")
        assert box.evaluate("e => getComputedStyle(e).overflowX") == "auto"
        assert box.evaluate("e => e.scrollWidth > e.clientWidth")
        # Filter fields are stacked: one column.
        lefts = page.locator("form.filters .filter-grid > label").evaluate_all(
            "ls => ls.map(l => Math.round(l.getBoundingClientRect().left))"
        )
        assert len(set(lefts)) == 1, lefts
        # The theme toggle is clickable and switches the theme.
        before = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.click(".theme-toggle")
        after = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert before != after
        assert page.evaluate("document.documentElement.dataset.theme") == (
            "light" if scheme == "dark" else "dark"
        )
        page.click(".topbar nav a >> text=Stats")
        page.wait_for_url("**/stats")
        assert not csp_errors(page), page.console_errors


# ---- item 10: /admin looks like the rest --------------------------------------------------------
def test_admin_has_the_dashboard_header_and_theme(live_server, browser):
    url = live_server()
    with open_page(browser, color_scheme="dark") as page:
        page.goto(url + "/")
        dashboard_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.goto(url + "/admin/")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dashboard_bg
        assert dashboard_bg == "rgb(18, 21, 27)"  # app.css's dark --bg
        assert page.locator("header.topbar .brand").is_visible()
        assert page.locator(".admin-nav >> text=Groups").is_visible()
        # The user's choice carries over: light on the dashboard is light on /admin.
        page.click(".theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        page.goto(url + "/admin/users/")
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (
            "rgb(247, 248, 250)"
        )
        with page.expect_navigation():
            page.click("header.topbar nav a >> text=Messages")
        assert page.url.rstrip("/") == url
        assert not csp_errors(page), page.console_errors


# ---- item 11: first use ---------------------------------------------------------------------------
def test_help_page_shortcuts_and_empty_states(live_server, page):
    url = live_server()
    page.goto(url + "/")
    empty = page.locator("#empty-state")
    assert empty.is_visible()
    assert "No messages yet" in empty.inner_text()
    assert empty.locator("a[href='/system']").count() == 1  # auth disabled: an administrator

    # "/" focuses the search box, "?" opens the help page.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "field-q"
    page.keyboard.type("abc")
    assert page.input_value("#field-q") == "abc"  # typed into the field, no shortcut fired
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("?")
    assert page.url == url + "/help"
    assert page.locator("h1").inner_text() == "Help"
    assert page.locator(".topbar nav a[aria-current=page]").inner_text() == "Help"
    assert page.locator("kbd", has_text="/").count() >= 1
    # On a page without a search box "/" goes to the message search.
    with page.expect_navigation():
        page.keyboard.press("/")
    assert page.url.rstrip("/") == url

    page.click(".topbar nav a >> text=Help")
    page.wait_for_url("**/help")
    page.goto(url + "/stats")
    notice = page.locator("#stats-empty")
    assert notice.is_visible()
    assert "No messages in this range" in notice.inner_text()
    assert "last 30d" in notice.inner_text()
    page.goto(url + "/errors")
    notice = page.locator("#errors-empty")
    assert "No unacknowledged failed messages in this range" in notice.inner_text()
    with page.expect_navigation():
        notice.locator("text=include acknowledged ones").click()
    assert "acknowledged=shown" in page.url and page.locator("#errors-empty").is_visible()
    assert not csp_errors(page), page.console_errors


def test_no_empty_state_once_messages_exist(live_server, page, some_messages):
    url = live_server()
    page.goto(url + "/")
    assert page.locator("#empty-state").count() == 0
    page.goto(url + "/stats")
    assert page.locator("#stats-empty").count() == 0
    page.goto(url + "/errors")
    assert page.locator("#errors-empty").count() == 0
