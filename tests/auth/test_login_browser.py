"""Browser login and logout against a real local OpenID Connect provider (oidc-provider-mock).

The dashboard runs in a real gunicorn with DISABLED_AUTH=false; Chromium goes through the whole
authorization code + PKCE flow, the ID token is verified, the user is created at first login with
the groups claim synced, and logout ends the provider session through its end_session_endpoint.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def provider(monkeypatch):
    from oidc_provider_mock import User, run_server_in_thread

    # Plain http on localhost for the provider thread (the dashboard gets the same variable).
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    alice = User(
        sub="alice-sub",
        claims={
            "email": "alice@example.org",
            "name": "Alice Example",
            "groups": ["bl06-team", "unknown-team"],
        },
    )
    with run_server_in_thread(port=0, user_claims=[alice]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def dashboard(live_server, provider):
    return live_server(
        DISABLED_AUTH="false",
        SSO_SERVER_URL=provider,
        SSO_CLIENT_ID="pacer-dashboard-test",
        SSO_CLIENT_SECRET="test-secret",
        SSO_GROUPS_CLAIM="groups",
        AUTHLIB_INSECURE_TRANSPORT="1",
    )


def test_login_and_logout(dashboard, provider, page, db, make_group):
    from models import User

    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]}, synced_from_sso=True)
    make_group("manual-team")  # not synced: the claim never changes its members

    page.goto(dashboard + "/")
    page.get_by_role("link", name="Log in").click()
    # The provider's consent page (a different origin): pick the predefined user.
    page.wait_for_url(f"{provider}/oauth2/authorize*")
    assert "code_challenge_method=S256" in page.url
    page.get_by_role("button", name="alice-sub").click()

    page.wait_for_url(dashboard + "/")
    assert page.get_by_test_id("current-user").inner_text() == "Alice Example"
    assert page.get_by_role("button", name="Log out").is_visible()

    db.session.expire_all()
    user = db.session.query(User).filter_by(sub="alice-sub").one()
    assert user.email == "alice@example.org"
    assert user.last_login_at is not None
    assert [g.name for g in user.groups] == [bl06.name]

    page.get_by_role("button", name="Log out").click()
    # The provider's end-session page, then back to the dashboard, logged out.
    page.wait_for_url(f"{provider}/oauth2/end_session*")
    assert "id_token_hint=" in page.url
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(dashboard + "/")
    assert page.get_by_role("link", name="Log in").is_visible()
    assert page.get_by_test_id("current-user").count() == 0
    # The mock provider's pages load a CDN stylesheet (unreachable here): only our own pages
    # matter, and none of them may trip the Content-Security-Policy.
    assert [
        e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e
    ] == []


def test_login_failure_is_a_clear_error(dashboard, provider, page):
    """Denying consent at the provider lands on a 400 page with the reason, not a 500."""
    page.goto(dashboard + "/login")
    page.wait_for_url(f"{provider}/oauth2/authorize*")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(dashboard + "/auth/callback*")
    assert "Login failed" in page.content()
    assert "access_denied" in page.content()


#: `next` values of /login as an attacker would put them in a link (raw query text).
HOSTILE_NEXT = [
    "/%09/evil.example/phish",  # tab: browsers drop it, leaving //evil.example
    "/%0d/evil.example/phish",  # CR: used to make the callback fail with a 500
    "/%0a/evil.example/phish",  # LF
    "/%5Cevil.example/phish",  # /\evil: browsers read \ as /
    "%2F%2Fevil.example/phish",  # //evil: scheme-relative
    "/%2F/evil.example/phish",  # decoded once by the query string: //evil
    "/%252F/evil.example/phish",  # /%2F/evil: a decoding proxy makes it //evil
    "https:evil.example/phish",  # a scheme without slashes
    "https://evil.example/phish",
    "%EF%BC%8F%EF%BC%8Fevil.example/phish",  # fullwidth solidus: NFKC //evil
    "/%EF%BC%BCevil.example/phish",  # fullwidth reverse solidus: NFKC /\evil
    "/%E2%80%AE/evil.example/phish",  # right-to-left override
    "/%C2%A0/evil.example/phish",  # no-break space
    "%20//evil.example/phish",  # leading space: browsers strip it
]


def test_hostile_next_never_leaves_the_site(dashboard, provider, browser):
    """Through the whole login flow each hostile `next` ends on the dashboard's home page."""
    landed = {}
    for raw in HOSTILE_NEXT + ["%2F%3Fstatus%3Derrored"]:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{dashboard}/login?next={raw}")
            page.wait_for_url(f"{provider}/oauth2/authorize*")
            page.get_by_role("button", name="alice-sub").click()
            page.wait_for_url(lambda url: not url.startswith(provider), wait_until="commit")
            page.wait_for_load_state()
            landed[raw] = (page.url, "Alice Example" in page.content())
        finally:
            context.close()
    home = (dashboard + "/", True)
    assert {raw: landed[raw] for raw in HOSTILE_NEXT} == {raw: home for raw in HOSTILE_NEXT}
    # A path of the site itself is still where the login returns to.
    assert landed["%2F%3Fstatus%3Derrored"] == (dashboard + "/?status=errored", True)


def test_logout_ends_the_session_for_copies_and_open_sockets(dashboard, provider, page, db):
    """After a real logout a copied session cookie is anonymous and an open socket is closed."""
    import json

    import requests
    from simple_websocket import Client, ConnectionClosed

    from webapp.auth.sessions import SESSION_ENDED_CLOSE_CODE

    page.goto(dashboard + "/login")
    page.wait_for_url(f"{provider}/oauth2/authorize*")
    page.get_by_role("button", name="alice-sub").click()
    page.wait_for_url(dashboard + "/")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "session")

    def logged_in_with_copy() -> bool:
        html = requests.get(dashboard + "/", cookies={"session": cookie}, timeout=10).text
        return 'data-testid="current-user"' in html

    assert logged_in_with_copy()
    ws = Client.connect(
        dashboard.replace("http://", "ws://") + "/ws/messages",
        headers={"Cookie": f"session={cookie}"},
    )
    try:
        assert json.loads(ws.receive(timeout=30))["type"] == "hello"
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{provider}/oauth2/end_session*")
        assert not logged_in_with_copy()
        frames, code = [], None
        try:
            for _ in range(40):
                raw = ws.receive(timeout=0.5)
                if raw:
                    frames.append(json.loads(raw))
        except ConnectionClosed as exc:
            code = exc.reason
    finally:
        if ws.connected:
            ws.close()
    assert code == SESSION_ENDED_CLOSE_CODE
    assert frames and frames[-1]["type"] == "error"
