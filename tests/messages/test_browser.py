"""What a person does in the browser: filter, open a message, copy its hash, follow its trace,
see new reports arrive live (only when they match), and hostile reports stay inert."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import report_body as body
from tests.messages.test_pages import HOSTILE

pytestmark = pytest.mark.browser

FULL_HASH = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def rows(page) -> list[str]:
    return page.locator("#message-rows tr.msg").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-id'))"
    )


@pytest.fixture
def watched(page):
    """The page fixture, failing the test on any JavaScript dialog."""
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.dialogs = dialogs
    return page


def test_filter_open_copy_hash_and_trace(live_server, watched, write_reports):
    page = watched
    url = live_server()
    digest = "feedfacefeedface"
    ids = {"instrument": "BL13", "investigation": "2022097034", "dataset": "mx_77"}
    linked = {"dataset_id": "8080", "visit_id": "BL13-2", "investigation": "2022097034"}
    stage1, stage2, stage3a, stage3b = write_reports(
        body(message_type="dataset-ingestion", object_identifiers=ids, hash=digest),
        body(
            message_type="internal-dataset-ingestion",
            object_identifiers=linked,
            hash=digest,
            processing_start="2026-03-31T10:15:03",
        ),
        body(
            message_type="internal-statistics",
            object_identifiers=linked,
            hash=digest,
            processing_start="2026-03-31T10:15:04",
        ),
        body(
            message_type="internal-dataset-links",
            object_identifiers=linked,
            hash=digest,
            errored=True,
            error_message={"callback_func_links": "ICATObjectExistsError: x"},
            processing_start="2026-03-31T10:15:04",
        ),
    )
    (other_instrument,) = write_reports(
        body(object_identifiers={**ids, "instrument": "BL06"}, hash=FULL_HASH[:16])
    )
    (copy_me,) = write_reports(
        body(message_type="user-sync", object_identifiers={"profile_id": "1"}, hash=FULL_HASH)
    )

    page.goto(url + "/")
    assert len(rows(page)) == 6

    # Filter by type and instrument with the form (keyboard-reachable controls).
    page.click("#field-type summary")
    page.check("#field-type input[value=dataset-ingestion]")
    page.fill("input[name=instrument]", "bl13")
    page.press("input[name=instrument]", "Enter")
    page.wait_for_url("**/?type=dataset-ingestion*")
    assert "instrument=bl13" in page.url and "hash=" not in page.url  # empty fields left out
    assert rows(page) == [str(stage1)]
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#message-rows tr.msg').length === 6")
    assert str(other_instrument) in rows(page)

    # Copy the full hash from the list row.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    button = page.locator(f'tr[data-id="{copy_me}"] button.copy')
    assert button.get_attribute("data-copy") == FULL_HASH
    assert page.locator(f'tr[data-id="{copy_me}"] code').inner_text() == FULL_HASH[:12]
    button.click()
    page.wait_for_function("() => document.getElementById('copy-status')?.textContent.length > 0")
    assert page.evaluate("navigator.clipboard.readText()") == FULL_HASH

    # Open a message, then its trace: four stages in pipeline order, the failed one marked.
    page.click(f'tr[data-id="{stage3a}"] td.id a')
    page.wait_for_url(f"**/messages/{stage3a}")
    assert page.locator("#message-hash").inner_text() == digest
    page.click("text=Pipeline trace")
    page.wait_for_url(f"**/messages/{stage3a}/trace")
    stages = page.locator("li.stage")
    assert stages.evaluate_all("s => s.map(x => x.dataset.stage + ':' + x.dataset.state)") == [
        "dataset-ingestion:ok",
        "internal-dataset-ingestion:ok",
        "internal-statistics:ok",
        "internal-dataset-links:failed",
    ]
    linked_ids = page.locator("li.stage li.attempt").evaluate_all(
        "a => a.map(x => Number(x.dataset.id))"
    )
    assert linked_ids == [stage1, stage2, stage3a, stage3b]
    assert page.dialogs == [] and page.console_errors == []


def test_new_reports_appear_live_only_when_they_match(live_server, watched, write_reports):
    page = watched
    url = live_server()
    (old,) = write_reports(body(message_type="user-sync"))
    page.goto(url + "/?type=dataset-ingestion&acknowledged=hidden")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.locator("#message-count").inner_text() == "0"

    write_reports(body(message_type="user-sync"))  # does not match the page's filter
    matching, hostile = write_reports(
        body(message_type="dataset-ingestion", hash=FULL_HASH),
        body(**{**HOSTILE, "message_type": "dataset-ingestion"}),
    )
    page.wait_for_selector(f'tr[data-id="{matching}"]', timeout=2000)
    assert rows(page) == [str(hostile), str(matching)]
    assert page.locator("#message-count").inner_text() == "2"
    assert (
        page.locator(f'tr[data-id="{matching}"] button.copy').get_attribute("data-copy")
        == FULL_HASH
    )
    # The hostile row shows its markup as text.
    text = page.locator(f'tr[data-id="{hostile}"]').inner_text()
    assert "<script>alert(3)</script>" in text and '"><script>alert(2)</script>' in text
    assert page.locator("#message-rows script, #message-rows svg, #message-rows img").count() == 0
    page.wait_for_timeout(700)
    assert str(old) not in rows(page) and len(rows(page)) == 2

    # The toggle turns live updates off, and the choice is remembered.
    page.uncheck("#live-toggle")
    assert page.locator("#live-status").get_attribute("data-state") == "off"
    page.reload()
    assert not page.is_checked("#live-toggle")
    (quiet,) = write_reports(body(message_type="dataset-ingestion"))
    page.wait_for_timeout(1500)
    assert str(quiet) not in rows(page)
    page.check("#live-toggle")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.dialogs == [] and page.console_errors == []


def test_a_large_count_arrives_after_the_rows_and_live_updates_add_to_it(
    live_server, watched, write_reports
):
    """Beyond 1,000 matches the page shows "1,000+" with its rows, then the exact count (as of
    its newest row); reports that arrive live are added to it, even before it arrived."""
    page = watched
    url = live_server()
    write_reports(*(body(message_type="proposal-sync") for _ in range(1_003)))
    page.goto(url + "/?type=proposal-sync")
    page.wait_for_selector("#message-count[data-exact=true]")
    assert page.locator("#message-count").inner_text() == "1,003"
    page.wait_for_selector("#live-status[data-state=live]")
    write_reports(body(message_type="proposal-sync"), body(message_type="user-sync"))
    expect(page.locator("#message-count")).to_have_text("1,004", timeout=3000)
    # Before the exact count arrives, the page holds what live updates add and sums both.
    assert page.dialogs == [] and page.console_errors == []
    page.route("**/messages/count*", lambda route: page.wait_for_timeout(1500) or route.continue_())
    page.reload()
    assert page.locator("#message-count").get_attribute("data-exact") == "pending"
    assert page.locator("#message-count").inner_text() == "1,000+"
    page.wait_for_selector("#live-status[data-state=live]")
    write_reports(body(message_type="proposal-sync"))
    expect(page.locator("#message-count")).to_have_text("1,005", timeout=5000)
    assert page.dialogs == [] and page.console_errors == []


def test_live_updates_keep_the_table_bounded_and_the_way_down(live_server, watched, write_reports):
    """A list left open in live mode keeps at most LIVE_MAX_ROWS rows: the oldest go (below the
    window, never while rows are selected), and "load older" goes on right below the last row
    kept: no message skipped, none twice."""
    from webapp.messages.routes import LIVE_MAX_ROWS

    page = watched
    url = live_server()
    ids = write_reports(*(body(message_type="proposal-sync") for _ in range(60)))
    page.goto(url + "/?type=proposal-sync")
    page.wait_for_selector("#live-status[data-state=live]")
    assert len(rows(page)) == 50

    def arrive(n: int) -> None:
        batch = write_reports(*(body(message_type="proposal-sync") for _ in range(n)))
        ids.extend(batch)
        page.wait_for_selector(f'tr[data-id="{batch[-1]}"]', timeout=5000)

    for _ in range(LIVE_MAX_ROWS // 100):
        arrive(100)
    newest_first = [str(i) for i in sorted(ids, reverse=True)]
    assert rows(page) == newest_first[:LIVE_MAX_ROWS]
    last = page.locator("#message-rows tr.msg").last.get_attribute("data-cursor")
    assert f"cursor={last}" in page.locator('nav.pager a[rel="next"]').get_attribute("href")
    # Scrolled to, the "load older" row brings the rows right below the last one kept.
    page.locator("#message-rows tr.load-more a").scroll_into_view_if_needed()
    expect(page.locator("#message-rows tr.msg")).to_have_count(LIVE_MAX_ROWS + 50, timeout=5000)
    assert rows(page) == newest_first[: LIVE_MAX_ROWS + 50]

    # While a row is selected nothing goes; once it is not, the table is trimmed again.
    page.evaluate("window.scrollTo(0, 0)")
    selected = page.locator(f'tr[data-id="{newest_first[0]}"] input.select-row')
    selected.check()
    arrive(100)
    assert len(rows(page)) == LIVE_MAX_ROWS + 150
    selected.uncheck()
    arrive(1)
    assert rows(page) == [str(i) for i in sorted(ids, reverse=True)][:LIVE_MAX_ROWS]
    assert page.dialogs == [] and page.console_errors == []


def test_live_updates_reconnect_after_a_drop(live_server, watched, write_reports, pg):
    page = watched
    url = live_server()
    page.goto(url + "/")
    page.wait_for_selector("#live-status[data-state=live]")
    # Drop the connection from the browser side as a network failure would.
    page.evaluate("window.pacerLive.socket.close()")
    page.wait_for_selector("#live-status[data-state=retrying]")
    page.wait_for_selector("#live-status[data-state=live]", timeout=5000)
    (fresh,) = write_reports(body())
    page.wait_for_selector(f'tr[data-id="{fresh}"]', timeout=2000)
    assert page.dialogs == []


def test_hostile_report_on_detail_and_trace_executes_nothing(live_server, watched, write_reports):
    page = watched
    url = live_server()
    (mid,) = write_reports(body(**HOSTILE))
    for path in ("/?acknowledged=shown", f"/messages/{mid}", f"/messages/{mid}/trace"):
        page.goto(url + path)
        assert "<script>alert('type')</script>" in page.locator("main").inner_text()
    page.goto(url + f"/messages/{mid}")
    assert "<script>alert(6)</script>" in page.locator("#payload-raw").text_content()
    page.click("[data-payload-view]")
    assert page.locator("#payload-raw").is_visible()
    assert page.dialogs == [] and page.console_errors == []
