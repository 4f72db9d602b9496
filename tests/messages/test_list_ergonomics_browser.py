"""List ergonomics in Chromium (issue 16 item 9): several message types picked with plain clicks,
rows selected and acknowledged through the preview-and-confirm flow, a jump to a date, "failed"
as the one word. No page trips the Content-Security-Policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import report_body as body

pytestmark = pytest.mark.browser


def rows(page) -> list[str]:
    return page.locator("#message-rows tr.msg").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-id'))"
    )


def csp_errors(page) -> list[str]:
    return [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e]


def test_pick_several_types_without_ctrl_click(live_server, page, write_reports):
    url = live_server()
    ingest, links, sync = write_reports(
        body(message_type="dataset-ingestion"),
        body(message_type="internal-dataset-links"),
        body(message_type="user-sync"),
    )
    page.goto(url + "/")
    picker = page.locator("#field-type")
    assert picker.locator("input[type=checkbox]").count() >= 3
    assert not picker.locator(".type-options").is_visible()  # closed until asked
    page.click("#field-type summary")
    page.click("#field-type label:has(input[value=dataset-ingestion])")
    page.click("#field-type label:has(input[value=user-sync])")  # plain clicks, no modifier
    assert picker.locator("summary").inner_text() == "dataset-ingestion, user-sync"
    # Escape closes the dropdown and gives the focus back to it.
    page.keyboard.press("Escape")
    assert not picker.locator(".type-options").is_visible()
    page.click("form.filters button[type=submit]")
    page.wait_for_function("() => location.search.length > 0")
    assert "/?type=dataset-ingestion&type=user-sync&" in page.url, page.url
    assert sorted(rows(page)) == sorted([str(ingest), str(sync)])
    assert str(links) not in rows(page)
    checked = picker.locator("input:checked").evaluate_all("b => b.map(x => x.value)")
    assert checked == ["dataset-ingestion", "user-sync"]
    assert picker.locator("summary").inner_text() == "dataset-ingestion, user-sync"
    # A click elsewhere closes an open picker.
    page.click("#field-type summary")
    assert picker.locator(".type-options").is_visible()
    page.click("h1")
    assert not picker.locator(".type-options").is_visible()
    assert csp_errors(page) == [] and page.console_errors == []


def test_select_rows_then_acknowledge_them_with_preview_and_confirm(
    live_server, page, write_reports
):
    url = live_server()
    first, second, third = write_reports(
        *(
            body(
                message_type="user-sync",
                errored=True,
                error_message={"callback": "SyncError: boom"},
            )
            for _ in range(3)
        )
    )
    page.goto(url + "/?status=errored")
    # One word: the rows and the filter both say "failed".
    assert page.locator("#field-status option:checked").inner_text() == "failed"
    assert page.locator(f'tr[data-id="{first}"] .status-label').inner_text() == "failed"
    selected_button = page.locator("[data-action=acknowledge-selected]")
    assert selected_button.is_disabled()  # nothing selected yet

    page.check(f'tr[data-id="{first}"] input.select-row')
    page.check(f'tr[data-id="{third}"] input.select-row')
    assert page.locator("#selection-count").inner_text() == "2 rows selected"
    assert page.locator("#select-page").evaluate("b => b.indeterminate")
    assert selected_button.is_enabled()
    selected_button.click()
    # Posted (step=preview), so no selection outgrows a URL; one compact `ids` argument.
    page.wait_for_selector(".preview-count")
    assert page.url.endswith("/actions/acknowledge")
    assert page.locator(".selected-ids").get_attribute("data-ids") == f"{third},{first}"
    assert page.locator(".preview-count").get_attribute("data-count") == "2"
    page.click("button[data-action=confirm]")
    page.wait_for_selector(".notice-ok")
    assert page.locator(".notice-ok").get_attribute("data-count") == "2"

    page.goto(url + "/?status=errored")
    assert rows(page) == [str(second)]  # the acknowledged two are hidden
    # "Select every row on this page", then everything matching the filter through its link.
    page.check("#select-page")
    assert page.locator("#selection-count").inner_text() == "1 row selected"
    page.click("[data-action=acknowledge-matching]")
    page.wait_for_url("**/actions/acknowledge?status=errored")
    assert page.locator(".preview-count").get_attribute("data-count") == "1"
    assert csp_errors(page) == [] and page.console_errors == []


def test_jump_to_a_date_moves_the_list_before_that_day_ends(live_server, page, write_reports):
    url = live_server()
    (march_1,) = write_reports(
        body(message_type="user-sync"), now=datetime(2026, 3, 1, 10, tzinfo=UTC)
    )
    (march_5,) = write_reports(
        body(message_type="user-sync"), now=datetime(2026, 3, 5, 23, 59, tzinfo=UTC)
    )
    (march_6,) = write_reports(
        body(message_type="user-sync"), now=datetime(2026, 3, 6, 0, 1, tzinfo=UTC)
    )
    write_reports(body(message_type="dataset-ingestion"), now=datetime(2026, 3, 2, tzinfo=UTC))

    page.goto(url + "/?type=user-sync")
    assert rows(page)[:3] == [str(march_6), str(march_5), str(march_1)]
    page.fill("#jump-date", "2026-03-05")
    page.click("form.jump button[type=submit]")
    page.wait_for_url("**/?type=user-sync&until=2026-03-05")
    assert rows(page) == [str(march_5), str(march_1)]  # received before the end of that day
    assert page.locator("#jump-date").input_value() == "2026-03-05"
    assert page.locator("#field-until").input_value() == "2026-03-06T00:00"
    assert csp_errors(page) == [] and page.console_errors == []
