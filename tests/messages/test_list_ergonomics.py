"""List ergonomics (issue 16 item 9), through the Flask client: the type picker offers the types of
the user's scope (from the rollups), selected rows (`ids`) are validated and scoped in the bulk
preview and confirmation, "jump to a date" keeps the filters, one word ("failed") for an errored
message while `status=errored` stays the URL value."""

from __future__ import annotations

import re

import pytest

from tests.auth.support import csrf_token, login
from tests.factories import store_message


@pytest.fixture(autouse=True)
def _fresh_types_cache():
    from webapp.messages import queries

    queries._types_cache["at"] = 0.0
    yield
    queries._types_cache["at"] = 0.0


def type_options(html: str) -> list[str]:
    return re.findall(r'<input type="checkbox" name="type" value="([^"]+)"', html)


def preview_count(response) -> str:
    match = re.search(
        r'class="preview-count" data-count="([^"]*)"', response.get_data(as_text=True)
    )
    assert match, response.get_data(as_text=True)[:2000]
    return match.group(1)


# ---- message types: checkboxes, from the rollups, bounded by the scope ----------------------------
def test_type_picker_offers_stored_and_known_types_as_checkboxes(app, db, client):
    store_message(app, db, message_type="a-custom-type")
    html = client.get("/?type=dataset-ingestion").get_data(as_text=True)
    offered = type_options(html)
    assert "a-custom-type" in offered  # stored (rollups), not only the known ones
    assert "user-sync" in offered
    assert offered == sorted(offered)
    assert re.search(r'value="dataset-ingestion" checked', html)
    assert "<select" not in html.split('id="field-type"')[1].split("</details>")[0]


def test_type_picker_reads_the_rollups_not_messages(app, db, client, count_queries):
    store_message(app, db, message_type="a-custom-type")
    from webapp.messages import queries

    with app.test_request_context():
        with count_queries() as statements:
            assert "a-custom-type" in queries.message_types()
    assert statements and all("FROM messages" not in s for s in statements)
    assert any("FROM message_stats" in s for s in statements)


def test_type_picker_offers_only_the_types_of_the_users_scope(
    app, db, client, auth_enabled, make_group, make_user
):
    store_message(app, db, message_type="user-sync")
    store_message(app, db, message_type="a-custom-type")
    office = make_group("office", message_types=["user-sync", "proposal-sync"])
    login(client, make_user("clerk", groups=[office]))
    offered = type_options(client.get("/").get_data(as_text=True))
    assert offered == ["proposal-sync", "user-sync"]

    # A group without a type restriction sees every type (perhaps narrowed by identifiers).
    beamline = make_group("bl13", identifier_rules={"instrument": ["bl13"]})
    login(client, make_user("scientist", groups=[office, beamline]))
    offered = type_options(client.get("/").get_data(as_text=True))
    assert {"a-custom-type", "user-sync", "dataset-ingestion"} <= set(offered)


# ---- selected rows: ids --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ids",
    ["abc", "1,x", "-1", "1.5", "1" * 19, ",".join(str(i) for i in range(1, 1002))],
)
def test_ids_must_be_at_most_1000_message_ids(app, db, client, ids):
    for path in ("/actions/acknowledge", "/actions/reingest"):
        response = client.get(path, query_string={"ids": ids})
        assert response.status_code == 400, (path, ids)
    token = csrf_token(client)
    posted = client.post("/actions/acknowledge", data={"csrf_token": token, "ids": ids})
    assert posted.status_code == 400


def test_1000_ids_are_accepted(app, db, client):
    ids = ",".join(str(i) for i in range(1, 1001))
    assert client.get("/actions/acknowledge", query_string={"ids": ids}).status_code == 200


def test_selected_ids_narrow_the_filter_preview_and_confirmation(app, db, client):
    from models import AuditLog, Message

    failed = [store_message(app, db, errored=True, message_type="user-sync") for _ in range(4)]
    fine = store_message(app, db, errored=False, message_type="user-sync")
    chosen = [failed[0], failed[2], fine]  # `fine` does not match status=errored: left out

    args = {"status": "errored", "ids": ",".join(map(str, chosen))}
    preview = client.get("/actions/acknowledge", query_string=args)
    assert preview.status_code == 200
    assert preview_count(preview) == "2"
    html = preview.get_data(as_text=True)
    assert 'data-ids="' in html and "through_id" in html  # carried into the confirmation
    # Repeated arguments work as well as one comma-separated list.
    repeated = client.get(
        "/actions/acknowledge",
        query_string=[("status", "errored")] + [("ids", str(i)) for i in chosen],
    )
    assert preview_count(repeated) == "2"

    done = client.post(
        "/actions/acknowledge",
        data={"csrf_token": csrf_token(client), **args, "expected": "2"},
    )
    assert done.status_code == 200
    db.session.expire_all()
    acked = {m.id for m in db.session.query(Message).filter(Message.acknowledged_at.is_not(None))}
    assert acked == {failed[0], failed[2]}
    row = db.session.query(AuditLog).filter_by(action="bulk-acknowledge").one()
    assert sorted(row.message_ids) == sorted([failed[0], failed[2]])
    assert row.detail["filter"]["ids"] == args["ids"]


def test_selected_ids_are_scoped(app, db, client, auth_enabled, make_group, make_user):
    from models import Message

    mine = store_message(app, db, errored=True, message_type="user-sync")
    theirs = store_message(app, db, errored=True, message_type="dataset-ingestion")
    office = make_group("office", message_types=["user-sync"], can_acknowledge=True)
    login(client, make_user("clerk", groups=[office]))

    args = {"ids": f"{mine},{theirs}"}
    assert preview_count(client.get("/actions/acknowledge", query_string=args)) == "1"
    only_theirs = client.get("/actions/acknowledge", query_string={"ids": str(theirs)})
    assert preview_count(only_theirs) == "0"
    done = client.post("/actions/acknowledge", data={"csrf_token": csrf_token(client), **args})
    assert done.status_code == 200
    db.session.expire_all()
    acked = {m.id for m in db.session.query(Message).filter(Message.acknowledged_at.is_not(None))}
    assert acked == {mine}

    # A user who may not act is refused, ids or not.
    viewer = make_group("viewers", message_types=["user-sync"])
    login(client, make_user("viewer", groups=[viewer]))
    assert client.get("/actions/acknowledge", query_string=args).status_code == 403


def test_list_offers_selection_only_to_users_who_may_act(
    app, db, client, auth_enabled, make_group, make_user
):
    store_message(app, db, errored=True, message_type="user-sync")
    viewer = make_group("viewers", message_types=["user-sync"])
    login(client, make_user("viewer", groups=[viewer]))
    html = client.get("/").get_data(as_text=True)
    assert 'id="selection-form"' not in html and 'id="select-page"' not in html
    office = make_group("office", message_types=["user-sync"], can_acknowledge=True)
    login(client, make_user("clerk", groups=[office]))
    html = client.get("/?status=errored").get_data(as_text=True)
    assert 'id="selection-form"' in html and 'id="select-page"' in html
    assert 'data-action="acknowledge-selected"' in html
    assert 'data-action="reingest-selected"' not in html  # no re-ingest grant
    assert re.search(r'href="/actions/acknowledge\?status=errored"', html)


# ---- jump to a date -------------------------------------------------------------------------------
def test_jump_to_a_date_keeps_the_filters_and_replaces_until(app, db, client):
    html = client.get("/?type=user-sync&status=errored&until=2026-03-01&limit=25").get_data(
        as_text=True
    )
    form = html.split('class="jump"')[1].split("</form>")[0]
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    assert hidden == [("type", "user-sync"), ("status", "errored"), ("limit", "25")]
    assert 'type="date" id="jump-date" name="until" value="2026-03-01"' in form


# ---- one word: failed ----------------------------------------------------------------------------
def test_failed_is_the_label_and_errored_stays_the_url_value(app, db, client):
    store_message(app, db, errored=True, message_type="user-sync")
    response = client.get("/?status=errored")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    status = html.split('id="field-status"')[1].split("</select>")[0]
    assert '<option value="errored" selected>failed</option>' in status
    assert ">errored<" not in status
    chips = html.split('aria-label="Active filters"')[1].split("</span>\n")[0]
    assert "status: failed" in chips


def test_failed_is_the_one_word_on_every_page(app, db, client):
    failed = store_message(
        app,
        db,
        errored=True,
        message_type="dataset-ingestion",
        error_message={"callback": "ICATError: down"},
    )
    pages = {
        "list": client.get("/?status=errored"),
        "detail": client.get(f"/messages/{failed}"),
        "trace": client.get(f"/messages/{failed}/trace"),
        "errors": client.get("/errors?range=all"),
        "stats": client.get("/stats?range=all"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.get_data(as_text=True)
        text = re.sub(r"<script.*?</script>", "", html, flags=re.S)  # data, not text
        text = re.sub(r"<[^>]+>", " ", text)  # what a person reads (no attributes, no markup)
        assert not re.search(r"\berrored\b", text, re.I), (
            name,
            re.findall(r".{40}errored.{40}", text),
        )
    assert ">failed</span>" in pages["detail"].get_data(as_text=True)
    assert ">failed</span>" in pages["trace"].get_data(as_text=True)
    errors_html = pages["errors"].get_data(as_text=True)
    assert "unacknowledged failed messages" in errors_html
    stats_html = pages["stats"].get_data(as_text=True)
    assert '<span class="tile-label">failed</span>' in stats_html
    assert "Failure rate per type" in stats_html
