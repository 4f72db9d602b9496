"""CSRF on every state-changing request, security headers, login redirects, user sync, CLI."""

from __future__ import annotations

import pytest

from tests.auth.support import ADMIN_GROUP, csrf_token, login


def test_post_without_csrf_token_is_rejected(app, db, client, seeded):
    from models import AuditLog, Message

    message_id = seeded.ids["A"]
    response = client.post(f"/messages/{message_id}/acknowledge")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    wrong = client.post(f"/messages/{message_id}/acknowledge", data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    db.session.expire_all()
    assert db.session.query(Message).filter_by(id=message_id).one().acknowledged_at is None
    assert db.session.query(AuditLog).count() == 0


def test_htmx_post_with_header_token(app, db, client, seeded):
    """htmx sends the token in X-CSRFToken (webapp/static/js/csrf.js) and gets the fragment."""
    message_id = seeded.ids["A"]
    token = csrf_token(client)
    response = client.post(
        f"/messages/{message_id}/acknowledge",
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert 'id="message-actions"' in response.get_data(as_text=True)
    assert "Un-acknowledge" in response.get_data(as_text=True)


def test_logout_requires_csrf(app, db, client, auth_enabled, make_user):
    login(client, make_user("someone"))
    assert client.post("/logout").status_code == 400


def test_security_headers(app, db, client, auth_enabled):
    response = client.get("/no-such-page")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp  # no 'unsafe-inline', no nonce outside /admin
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://sso.example.org" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_csrf_meta_and_script_in_every_page(app, db, client):
    html = client.get("/no-such-page").get_data(as_text=True)
    assert '<meta name="csrf-token" content="' in html
    assert "/static/js/csrf.js" in html
    js = client.get("/static/js/csrf.js").get_data(as_text=True)
    assert "htmx:configRequest" in js and "X-CSRFToken" in js


def test_login_disabled_auth_redirects_home(app, db, client):
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/")


def test_provider_unreachable_is_503(app, db, client, auth_enabled):
    # Auth was disabled when the session app was built, so register a client to an unused port.
    from webapp.auth.setup import _register_oidc_client

    settings = auth_enabled.__class__(
        **{**auth_enabled.__dict__, "SSO_SERVER_URL": "http://127.0.0.1:9"}
    )
    _register_oidc_client(app, settings)
    try:
        response = client.get("/login")
        assert response.status_code == 503
        assert "not reachable" in response.get_data(as_text=True)
    finally:
        app.extensions.pop("authlib.integrations.flask_client", None)


def test_user_from_claims_and_group_sync(app, db, make_group, make_user):
    from webapp.auth.services import user_from_claims

    synced = make_group("beamline-06", synced_from_sso=True)
    other_synced = make_group("beamline-13", synced_from_sso=True)
    manual = make_group("manual")
    user = user_from_claims(
        {
            "sub": "s-1",
            "email": "a@example.org",
            "name": "A",
            "realm_access": {"roles": ["/beamline-06"]},
        },
        "realm_access.roles",
    )
    manual.users.append(user)
    db.session.commit()
    assert {g.name for g in user.groups} == {"beamline-06", "manual"}

    # Next login: the claim changed. Synced groups follow it, manual membership stays.
    user = user_from_claims(
        {"sub": "s-1", "email": "a@example.org", "realm_access": {"roles": ["beamline-13"]}},
        "realm_access.roles",
    )
    db.session.commit()
    assert {g.name for g in user.groups} == {other_synced.name, manual.name}
    assert synced not in user.groups
    assert user.name == "A"


def test_grant_admin_cli(app, db, make_user):
    from models import AuditLog, User
    from webapp.auth.scope import scope_for_user

    runner = app.test_cli_runner()
    make_user("known-sub", email="Known@Example.org")
    result = runner.invoke(args=["users", "grant-admin", "known@example.org"])
    assert result.exit_code == 0, result.output
    assert f"member of {ADMIN_GROUP}" in result.output

    # Not logged in yet: provisioned by email, taken over at first login.
    result = runner.invoke(args=["users", "grant-admin", "new.admin@example.org"])
    assert result.exit_code == 0, result.output
    from webapp.auth.services import user_from_claims

    user = user_from_claims({"sub": "real-sub", "email": "new.admin@example.org"})
    db.session.commit()
    assert user.sub == "real-sub"
    assert [g.name for g in user.groups] == [ADMIN_GROUP]
    settings = app.extensions["settings"].__class__(
        **{**app.extensions["settings"].__dict__, "DISABLED_AUTH": False}
    )
    assert scope_for_user(user, settings).is_admin

    result = runner.invoke(args=["users", "grant-admin", "no-such-sub"])
    assert result.exit_code != 0
    assert "log in once" in result.output
    assert db.session.query(AuditLog).filter_by(action="grant-admin").count() == 2
    assert db.session.query(User).count() == 2


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_login_next_is_local_only(target):
    from webapp.auth.routes import _safe_next

    assert _safe_next(target) is None
    assert _safe_next("/messages/1?x=y") == "/messages/1?x=y"


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/phish",
        "/\r/x",
        "/\n/x",
        "\t//evil.example",
        " //evil.example",
        "/\\evil",
        "/%5Cevil",
        "//evil",
        "/%2F/evil",
        "/%252F/evil",
        "/%25252F/evil",
        "https:evil",
        "javascript:alert(1)",
        "http://evil.example",
        "\uff0f\uff0fevil.example",  # fullwidth solidus
        "/\uff3cevil.example",  # fullwidth reverse solidus
        "/\u202e/evil",  # right-to-left override
        "/\u200b/evil",  # zero-width space
        "/\u00a0/evil",  # no-break space
        "/\u2028/evil",  # line separator
        "//[x",
        "",
        None,
        "/" + "a" * 3000,
    ],
)
def test_login_next_rejects_hostile_values(target):
    from webapp.auth.routes import _safe_next

    assert _safe_next(target) is None


@pytest.mark.parametrize(
    "target", ["/", "/?", "/messages/12", "/?status=errored&q=a%20b", "/errors?x=//y"]
)
def test_login_next_keeps_site_paths(target):
    from webapp.auth.routes import _safe_next

    assert _safe_next(target) == target


@pytest.mark.parametrize("raw", ["/%09/evil.example/phish", "/%0d/x", "/%0a/x", "/%2F/evil"])
def test_login_does_not_store_a_hostile_next(app, db, client, auth_enabled, raw):
    """Nothing hostile reaches the session, so the callback can never redirect (or 500) on it."""
    from webapp.auth.setup import _register_oidc_client

    # A provider on an unused port: /login stores `next`, then answers 503.
    settings = auth_enabled.__class__(
        **{**auth_enabled.__dict__, "SSO_SERVER_URL": "http://127.0.0.1:9"}
    )
    _register_oidc_client(app, settings)
    try:
        assert client.get("/login?next=/messages/7").status_code == 503
        with client.session_transaction() as session:
            assert session.pop("login_next") == "/messages/7"
        assert client.get(f"/login?next={raw}").status_code == 503
        with client.session_transaction() as session:
            assert "login_next" not in session
    finally:
        app.extensions.pop("authlib.integrations.flask_client", None)
