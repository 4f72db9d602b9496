"""/admin in Chromium under the strict Content-Security-Policy (no inline scripts or handlers):
deleting asks first, "With selected" acts on the selected rows, a group's rules can be edited
without renaming it, and nothing trips the policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import report_body

pytestmark = pytest.mark.browser


def csp_errors(page) -> list[str]:
    return [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e]


@pytest.fixture
def groups(db, make_group):
    """Three groups, committed (the live server reads them); returns their ids by name."""
    made = [
        make_group("keep-me", identifier_rules={"instrument": ["bl06"]}),
        make_group("drop-one", message_types=["user-sync"]),
        make_group("drop-two", identifier_rules={"instrument": ["bl13"]}),
    ]
    return {g.name: g.id for g in made}


def group_names(db) -> set[str]:
    from models import Group

    db.session.expire_all()
    return {g.name for g in db.session.query(Group)}


def row(page, text: str):
    return page.locator("table.model-list tbody tr", has_text=text)


def test_delete_asks_first_and_cancel_keeps_the_row(live_server, page, db, groups):
    url = live_server()
    page.goto(url + "/admin/groups/")
    asked: list[str] = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    row(page, "keep-me").locator("form button[title='Delete Record']").click()
    page.wait_for_timeout(300)  # a submit that slipped through would be on its way by now
    page.goto(url + "/admin/groups/")
    assert asked == ["Are you sure you want to delete this record?"]
    assert group_names(db) == {"keep-me", "drop-one", "drop-two"}

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        row(page, "drop-one").locator("form button[title='Delete Record']").click()
    assert group_names(db) == {"keep-me", "drop-two"}
    assert row(page, "drop-one").count() == 0
    assert csp_errors(page) == []


def test_with_selected_delete_acts_on_the_selected_rows(live_server, page, db, groups):
    url = live_server()
    page.goto(url + "/admin/groups/")
    for name in ("drop-one", "drop-two"):
        row(page, name).locator("input.action-checkbox").check()
    asked: list[str] = []

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="With selected").click()
    with page.expect_navigation():
        page.locator(".dropdown-menu").get_by_text("Delete", exact=True).click()
    assert asked and "delete" in asked[0].lower()
    assert group_names(db) == {"keep-me"}
    assert "2 records were successfully deleted" in page.content()
    assert csp_errors(page) == []


def test_with_selected_replay_acts_on_the_selected_rows(live_server, page, db):
    from models import Message, QuarantinedReport

    for profile in ("p1", "p2", "p3"):
        db.session.add(
            QuarantinedReport(
                received_at=datetime.now(UTC),
                body=report_body(message_type="user-sync", object_identifiers={"profile": profile}),
                reason=f"parser bug {profile}",
                content_type="application/json",
                headers={},
                routing_key="message.logging",
            )
        )
    db.session.commit()
    by_reason = {q.reason: q.id for q in db.session.query(QuarantinedReport)}

    url = live_server()
    page.goto(url + "/admin/quarantine/")
    for reason in ("parser bug p1", "parser bug p3"):
        row(page, reason).locator("input.action-checkbox").check()
    asked: list[str] = []

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="With selected").click()
    with page.expect_navigation():
        page.locator(".dropdown-menu").get_by_text("Replay", exact=True).click()
    assert asked == ["Ingest the selected bodies again through the current parser?"]
    assert "Replayed: 2 ingested" in page.content()
    db.session.expire_all()
    replayed = {q.reason for q in db.session.query(QuarantinedReport) if q.replayed_at is not None}
    assert replayed == {"parser bug p1", "parser bug p3"}
    assert db.session.query(Message).count() == 2
    assert by_reason  # the ids were real rows
    assert csp_errors(page) == []


def test_group_rules_edited_without_renaming(live_server, page, db, groups):
    from models import Group

    url = live_server()
    page.goto(url + f"/admin/groups/edit/?id={groups['keep-me']}")
    page.locator("textarea#identifier_rules").fill("instrument: BL06, BL09\ninvestigation: INV1")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    assert "Already exists" not in page.content()
    assert "Record was successfully saved" in page.content()
    db.session.expire_all()
    group = db.session.get(Group, groups["keep-me"])
    assert group.name == "keep-me"
    assert group.identifier_rules == {"instrument": ["BL06", "BL09"], "investigation": ["INV1"]}
    assert csp_errors(page) == []


def test_admin_pages_trip_no_policy(live_server, page, db, groups):
    """Every admin page, its menus and the filter dropdown, with nothing refused."""
    url = live_server()
    for path in (
        "/admin/",
        "/admin/groups/",
        "/admin/groups/new/",
        "/admin/users/",
        "/admin/audit/",
        "/admin/quarantine/",
        "/admin/partitions/",
    ):
        page.goto(url + path)
        page.wait_for_load_state("load")
    page.goto(url + "/admin/audit/")
    page.get_by_text("Add Filter").click()
    page.locator(".field-filters a.filter").first.click()
    page.locator("a.remove-filter").first.wait_for()
    page.locator("a.nav-link.active").first.click()  # the "List" tab is a no-op link
    assert csp_errors(page) == []
