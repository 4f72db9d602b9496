"""Server-side sessions: logout, deactivation and group changes reach the next request and the
next WebSocket push; a copied session cookie dies with the session it was copied from."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from simple_websocket import Client, ConnectionClosed

from tests.auth.support import csrf_token, login
from tests.processes import serve_in_process


@pytest.fixture
def provider_down(app, auth_enabled):
    """An OIDC client whose provider is unreachable: logout ends our session, then goes home."""
    from webapp.auth.setup import _register_oidc_client

    _register_oidc_client(
        app, dataclasses.replace(auth_enabled, SSO_SERVER_URL="http://127.0.0.1:9")
    )
    yield
    app.extensions.pop("authlib.integrations.flask_client", None)


def copy_of(app, client):
    """A second client holding a copy of `client`'s session cookie (a stolen cookie)."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def get(client, path: str):
    """GET with the user loaded afresh: tests keep one app context (and `g`) across requests,
    and Flask-Login caches the user of the last request on `g`."""
    from flask import g

    g.pop("_login_user", None)
    return client.get(path)


def sees_details(client, message_id: int, marker: str) -> bool:
    response = get(client, f"/messages/{message_id}")
    assert response.status_code == 200
    return marker in response.get_data(as_text=True)


def session_rows(db, user_id: int) -> int:
    from sqlalchemy import func, select

    from models import UserSession

    return db.session.scalar(select(func.count()).where(UserSession.user_id == user_id))


def test_a_copied_cookie_stops_working_at_logout(
    app, db, client, provider_down, make_group, make_user, seeded
):
    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})
    user = make_user("alice", [bl06])
    login(client, user)
    stolen = copy_of(app, client)
    marker = seeded.markers["A"][1]
    assert sees_details(client, seeded.ids["A"], marker)
    assert sees_details(stolen, seeded.ids["A"], marker)

    response = client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert session_rows(db, user.id) == 0

    assert not sees_details(stolen, seeded.ids["A"], marker)
    page = get(stolen, "/").get_data(as_text=True)
    assert 'data-testid="current-user"' not in page and "Log in" in page
    api = get(stolen, f"/api/v1/messages/{seeded.ids['A']}").get_data(as_text=True)
    assert marker not in api
    # The stale login keys are dropped from the copied cookie as well.
    with stolen.session_transaction() as session:
        assert "_user_id" not in session and "_sid" not in session


def test_logout_ends_only_that_session(app, db, client, provider_down, make_group, make_user):
    user = make_user("bob", [make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})])
    login(client, user)
    other_browser = app.test_client()
    login(other_browser, user)
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert 'data-testid="current-user"' in get(other_browser, "/").get_data(as_text=True)
    assert session_rows(db, user.id) == 1


def test_a_cookie_without_a_server_side_session_is_anonymous(
    app, db, client, auth_enabled, make_user
):
    """What a cookie signed before this change (or forged with the key) holds: only _user_id."""
    user = make_user("carol")
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
    assert 'data-testid="current-user"' not in get(client, "/").get_data(as_text=True)
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_sid"] = "a-token-that-was-never-issued"
    assert 'data-testid="current-user"' not in get(client, "/").get_data(as_text=True)


def test_deactivation_ends_every_session_for_good(
    app, db, client, auth_enabled, make_group, make_user, seeded
):
    user = make_user("dave", [make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})])
    login(client, user)
    laptop = app.test_client()
    login(laptop, user)
    marker = seeded.markers["A"][1]
    assert sees_details(laptop, seeded.ids["A"], marker)

    user.active = False  # what the admin view's form does
    db.session.commit()
    assert session_rows(db, user.id) == 0
    assert not sees_details(client, seeded.ids["A"], marker)

    user.active = True  # reactivated later: old cookies stay dead
    db.session.commit()
    assert not sees_details(laptop, seeded.ids["A"], marker)
    assert 'data-testid="current-user"' not in get(laptop, "/").get_data(as_text=True)


def test_deactivation_in_the_admin_view_ends_the_sessions(
    app, db, client, auth_enabled, make_group, make_user
):
    from flask import g

    from tests.auth.support import ADMIN_GROUP

    member = make_user("kim", [make_group("team")])
    browser = app.test_client()
    login(browser, member)
    assert 'data-testid="current-user"' in get(browser, "/").get_data(as_text=True)
    login(client, make_user("boss", [make_group(ADMIN_GROUP)]))
    g.pop("csrf_token", None)  # Flask-WTF caches the last request's token on the shared `g`
    token = csrf_token(client)
    response = client.post(
        f"/admin/users/edit/?id={member.id}",
        data={"csrf_token": token, "email": member.email, "name": ""},
    )  # "active" unchecked
    assert response.status_code == 302
    db.session.expire_all()
    assert member.active is False
    assert session_rows(db, member.id) == 0
    assert 'data-testid="current-user"' not in get(browser, "/").get_data(as_text=True)


def test_group_change_applies_at_the_next_request(
    app, db, client, auth_enabled, make_group, make_user, seeded
):
    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})
    user = make_user("erin", [bl06])
    login(client, user)
    marker = seeded.markers["A"][1]
    assert sees_details(client, seeded.ids["A"], marker)
    user.groups = []
    db.session.commit()
    assert not sees_details(client, seeded.ids["A"], marker)
    user.groups = [bl06]
    db.session.commit()
    assert sees_details(client, seeded.ids["A"], marker)


def test_sessions_purged_after_the_lifetime(app, db, make_user):
    from datetime import UTC, datetime

    from sqlalchemy import update

    from models import UserSession
    from webapp.auth import sessions

    user = make_user("frank")
    old = sessions.start(user)
    db.session.execute(update(UserSession).values(created_at=datetime(2020, 1, 1, tzinfo=UTC)))
    db.session.commit()
    assert not sessions.is_alive(user.id, old)
    fresh = sessions.start(user)
    db.session.commit()
    assert session_rows(db, user.id) == 1
    assert sessions.is_alive(user.id, fresh)


# ---- open WebSockets ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_server(app):
    """The session app on a threaded werkzeug server in this process (flask-sock works on it)."""
    with serve_in_process(app) as server:
        yield f"ws://127.0.0.1:{server.server_port}"


def open_socket(ws_server, client) -> Client:
    cookie = f"session={client.get_cookie('session').value}"
    ws = Client.connect(f"{ws_server}/ws/messages?acknowledged=shown", headers={"Cookie": cookie})
    frame = ws.receive(timeout=30)
    assert frame is not None and json.loads(frame)["type"] == "hello", frame
    return ws


def frames_until_closed(ws, seconds: float) -> tuple[list[dict], int | None]:
    """Frames received within `seconds` and the close code (None when still open)."""
    got: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            raw = ws.receive(timeout=0.3)
        except ConnectionClosed as exc:
            return got, exc.reason
        if raw is not None:
            got.append(json.loads(raw))
    return got, None


@pytest.mark.slow
def test_logout_closes_the_open_socket_before_any_further_push(
    request, app, db, client, ws_server, provider_down, make_group, make_user
):
    from webapp.auth.sessions import SESSION_ENDED_CLOSE_CODE

    user = make_user("gina", [make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})])
    login(client, user)
    ws = open_socket(ws_server, client)
    try:
        client.post("/logout", data={"csrf_token": csrf_token(client)})
        seeded = request.getfixturevalue("seeded")  # ingested right after the logout
        got, code = frames_until_closed(ws, 12)
    finally:
        if ws.connected:
            ws.close()
    assert code == SESSION_ENDED_CLOSE_CODE
    assert [f["type"] for f in got if f["type"] != "ping"] == ["error"]
    assert "session has ended" in got[-1]["message"]
    text = json.dumps(got)
    assert [m for k in seeded.markers for m in seeded.markers[k] if m in text] == []


@pytest.mark.slow
def test_deactivation_closes_an_idle_socket(app, db, client, ws_server, auth_enabled, make_user):
    from webapp.auth.sessions import CHECK_SECONDS, SESSION_ENDED_CLOSE_CODE

    user = make_user("hank")
    login(client, user)
    ws = open_socket(ws_server, client)
    try:
        started = time.monotonic()
        user.active = False
        db.session.commit()
        got, code = frames_until_closed(ws, CHECK_SECONDS + 8)
        elapsed = time.monotonic() - started
    finally:
        if ws.connected:
            ws.close()
    assert code == SESSION_ENDED_CLOSE_CODE, got
    assert elapsed < CHECK_SECONDS + 3


@pytest.mark.slow
def test_group_change_applies_at_the_next_push(
    request, app, db, client, ws_server, auth_enabled, make_group, make_user
):
    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]})
    user = make_user("iris", [bl06])
    login(client, user)
    ws = open_socket(ws_server, client)
    try:
        user.groups = []  # now group-less: every row, metadata only
        db.session.commit()
        seeded = request.getfixturevalue("seeded")
        got, code = frames_until_closed(ws, 6)
    finally:
        if ws.connected:
            ws.close()
    assert code is None
    pushed = [f for f in got if f["type"] == "messages"]
    assert {i for f in pushed for i in f["ids"]} == set(seeded.ids.values())
    html = "".join(f["html"] for f in pushed)
    assert [m for k in seeded.markers for m in seeded.markers[k] if m in html] == []
