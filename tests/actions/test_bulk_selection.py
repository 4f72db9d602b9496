"""A large row selection (hundreds of `ids`) reaches the bulk preview through the real web
process: the list posts it (step=preview, with CSRF) instead of putting every id in a GET URL,
which gunicorn refuses beyond its request-line limit (4094 bytes) with its own 400/414."""

from __future__ import annotations

import re

import pytest
import requests

from tests.factories import report_body as body

SELECTED = 500


def _errored(n: int) -> list[bytes]:
    return [
        body(message_type="user-sync", errored=True, error_message={"cb": "SyncError: boom"})
        for _ in range(n)
    ]


@pytest.fixture
def realistic_ids(db):
    """Message ids as a deployment with millions of messages has them (8 digits): 500 of them
    in a URL outgrow the request line, as on a production list."""
    from sqlalchemy import text

    db.session.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('messages', 'id'), "
            "GREATEST(nextval(pg_get_serial_sequence('messages', 'id')), 10000000))"
        )
    )
    db.session.commit()


def _hidden_fields(html: str) -> list[tuple[str, str]]:
    import html as html_lib

    form = html[html.index('<form method="post"') :]
    form = form[: form.index("</form>")]
    return [
        (name, html_lib.unescape(value))
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    ]


def _acknowledged(db, ids: list[int]) -> int:
    from sqlalchemy import func, select

    from models import Message

    db.session.expire_all()
    return db.session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.id.in_(ids), Message.acknowledged_at.is_not(None))
    )


def test_500_selected_rows_are_previewed_and_confirmed_through_gunicorn(
    live_server, write_reports, db, realistic_ids
):
    url = live_server()
    ids = write_reports(*_errored(SELECTED))
    ids_arg = ",".join(map(str, ids))
    http = requests.Session()

    # The defect as users met it: every id in the preview URL is refused by gunicorn itself
    # (its request line is at most 4094 bytes; 400 or, in recent versions, 414).
    too_long = http.get(f"{url}/actions/acknowledge", params={"ids": ids_arg}, timeout=30)
    assert too_long.status_code in (400, 414) and "preview-count" not in too_long.text

    # What the list's selection form sends: a POST to the same preview endpoint, with CSRF.
    page = http.get(f"{url}/?status=errored", timeout=30)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    assert 'id="selection-form"' in page.text and 'method="post"' in page.text
    preview = http.post(
        f"{url}/actions/acknowledge",
        data={"csrf_token": token, "step": "preview", "status": "errored", "ids": ids_arg},
        timeout=30,
    )
    assert preview.status_code == 200, preview.text[:2000]
    assert f'data-count="{SELECTED}"' in preview.text
    assert _acknowledged(db, ids) == 0  # a preview changes nothing
    fields = _hidden_fields(preview.text)
    assert ("step", "preview") not in fields  # the confirmation is the action itself
    assert ("ids", ids_arg) in fields

    done = http.post(f"{url}/actions/acknowledge", data=fields, timeout=30)
    assert done.status_code == 200, done.text[:2000]
    assert f"confirmed {SELECTED}, acknowledged {SELECTED}" in done.text
    assert _acknowledged(db, ids) == SELECTED


def test_a_preview_post_needs_csrf_and_stays_within_the_cap(app, db, client):
    from tests.auth.support import csrf_token

    missing = client.post("/actions/acknowledge", data={"step": "preview", "ids": "1,2"})
    assert missing.status_code == 400
    token = csrf_token(client)
    over = ",".join(str(i) for i in range(1, 1002))
    for path in ("/actions/acknowledge", "/actions/reingest"):
        response = client.post(path, data={"csrf_token": token, "step": "preview", "ids": over})
        assert response.status_code == 400, path
        assert "At most 1000 messages can be selected" in response.get_data(as_text=True)
    bad = client.post("/actions/acknowledge", data={"csrf_token": token, "step": "go"})
    assert bad.status_code == 400 and "step" in bad.get_data(as_text=True)


@pytest.mark.browser
def test_selecting_500_rows_in_chromium_opens_their_preview(
    live_server, page, write_reports, realistic_ids
):
    url = live_server()
    ids = write_reports(*_errored(SELECTED))
    page.goto(f"{url}/?status=errored&limit={SELECTED}")
    page.check("#select-page")
    assert page.locator("#selection-count").inner_text() == f"{SELECTED} rows selected"
    button = page.locator("[data-action=acknowledge-selected]")
    assert button.is_enabled()
    button.click()
    page.wait_for_selector(".preview-count")
    assert page.url.endswith("/actions/acknowledge")  # posted: no ids in the URL
    assert page.locator(".preview-count").get_attribute("data-count") == str(SELECTED)
    assert page.locator(".selected-ids").get_attribute("data-ids") == ",".join(
        map(str, sorted(ids, reverse=True))
    )
    page.click("button[data-action=confirm]")
    page.wait_for_selector(".notice-ok")
    assert page.locator(".notice-ok").get_attribute("data-count") == str(SELECTED)
    assert page.console_errors == []
