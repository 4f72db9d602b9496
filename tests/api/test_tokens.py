"""Personal API tokens (issue 16 item 8): created and revoked on /account/tokens, shown once,
SHA-256 at rest, the user's scope and rights on /api/v1 only, audited; actions through them."""

from __future__ import annotations

import hashlib
import re

import pytest
from flask import g
from sqlalchemy import select

from tests.auth.support import csrf_token, login

TOKEN_RE = re.compile(r'data-testid="token-value">(pacer_[A-Za-z0-9_-]+)<')


def fresh(client, method: str, path: str, **kwargs):
    """A request with the user loaded afresh (tests share one app context, and so `g`)."""
    g.pop("_login_user", None)
    return client.open(path, method=method, **kwargs)


def session_csrf(client, path: str = "/account/tokens") -> str:
    """The CSRF token of this client's session (flask-wtf caches one on the shared `g`)."""
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    return csrf_token(client, path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(db, action: str):
    from models import AuditLog

    return db.session.scalars(select(AuditLog).where(AuditLog.action == action)).all()


@pytest.fixture
def bl06_user(make_group, make_user):
    group = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]}, can_acknowledge=True)
    return make_user("ada", groups=[group])


def create_token(client, user, name: str = "script") -> str:
    login(client, user)
    csrf = session_csrf(client)
    response = fresh(client, "POST", "/account/tokens", data={"name": name, "csrf_token": csrf})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    match = TOKEN_RE.search(response.get_data(as_text=True))
    assert match, "the new token is shown on the creation page"
    return match.group(1)


def test_created_token_shown_once_and_hashed_at_rest(app, db, client, auth_enabled, bl06_user):
    from models import ApiToken

    token = create_token(client, bl06_user)
    assert len(token) >= len("pacer_") + 43  # 32 random bytes, URL-safe base64
    again = fresh(client, "GET", "/account/tokens").get_data(as_text=True)
    assert token not in again and "script" in again
    row = db.session.scalars(select(ApiToken)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.user_id == bl06_user.id and row.last_used_at is None
    [audit] = audit_rows(db, "api-token-create")
    assert audit.actor == "ada@example.org" and token not in str(audit.detail)


def test_creation_needs_csrf_and_login(app, db, client, auth_enabled, bl06_user):
    assert fresh(client, "GET", "/account/tokens").status_code == 401
    login(client, bl06_user)
    response = fresh(client, "POST", "/account/tokens", data={"name": "x"})
    assert response.status_code == 400  # CSRF token missing
    assert not audit_rows(db, "api-token-create")


def test_token_carries_the_users_scope_on_the_api(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    other = app.test_client()
    response = fresh(other, "GET", "/api/v1/messages", headers=bearer(token))
    assert response.status_code == 200
    ids = {item["id"] for item in response.get_json()["items"]}
    assert ids == {seeded.ids["A"], seeded.ids["D"]}
    detail = fresh(other, "GET", f"/api/v1/messages/{seeded.ids['A']}", headers=bearer(token))
    assert "PAYLOADMARKA" in detail.get_json()["payload"]
    hidden = fresh(other, "GET", f"/api/v1/messages/{seeded.ids['B']}", headers=bearer(token))
    assert hidden.status_code == 404
    # Anonymous on the API (no token): metadata only.
    anonymous = fresh(other, "GET", f"/api/v1/messages/{seeded.ids['A']}")
    assert "payload" not in anonymous.get_json()
    from models import ApiToken

    assert db.session.scalars(select(ApiToken)).one().last_used_at is not None


def test_pages_ignore_the_bearer_token(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    other = app.test_client()
    page = fresh(other, "GET", f"/messages/{seeded.ids['A']}", headers=bearer(token))
    assert page.status_code == 200
    assert "PAYLOADMARKA" not in page.get_data(as_text=True)
    assert fresh(other, "GET", "/account/tokens", headers=bearer(token)).status_code == 401
    # Nor does the bearer user outlive its request.
    fresh(other, "GET", "/api/v1/messages", headers=bearer(token))
    page = other.get(f"/messages/{seeded.ids['A']}")
    assert "PAYLOADMARKA" not in page.get_data(as_text=True)


def test_revoked_token_refused(app, db, client, auth_enabled, seeded, bl06_user):
    from models import ApiToken

    token = create_token(client, bl06_user)
    row = db.session.scalars(select(ApiToken)).one()
    csrf = session_csrf(client)
    response = fresh(client, "POST", f"/account/tokens/{row.id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 302
    refused = fresh(app.test_client(), "GET", "/api/v1/messages", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.get_json()["field"] == "Authorization"
    assert len(audit_rows(db, "api-token-revoke")) == 1
    assert "revoked" in fresh(client, "GET", "/account/tokens").get_data(as_text=True)


def test_only_the_owner_revokes(app, db, client, auth_enabled, make_user, bl06_user):
    from models import ApiToken

    create_token(client, bl06_user)
    row = db.session.scalars(select(ApiToken)).one()
    mallory = make_user("mallory")
    other = app.test_client()
    login(other, mallory)
    csrf = session_csrf(other)
    response = fresh(other, "POST", f"/account/tokens/{row.id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 404, response.get_data(as_text=True)[-800:]
    db.session.refresh(row)
    assert row.revoked_at is None


def test_deactivated_users_token_refused(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    other = app.test_client()
    assert fresh(other, "GET", "/api/v1/messages", headers=bearer(token)).status_code == 200
    bl06_user.active = False
    db.session.commit()
    assert fresh(other, "GET", "/api/v1/messages", headers=bearer(token)).status_code == 401
    # Reactivated, the person signs in again; the old token stays revoked.
    bl06_user.active = True
    db.session.commit()
    assert fresh(other, "GET", "/api/v1/messages", headers=bearer(token)).status_code == 401


def test_unknown_token_refused_even_with_a_session(app, db, client, auth_enabled, bl06_user):
    login(client, bl06_user)
    response = fresh(client, "GET", "/api/v1/messages", headers=bearer("pacer_nope"))
    assert response.status_code == 401


# ---- actions through tokens ----------------------------------------------------------------------


def test_acknowledge_through_a_token(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    api = app.test_client()
    a = seeded.ids["A"]
    response = fresh(api, "POST", f"/api/v1/messages/{a}/acknowledge", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["acknowledged"] is True and body["acknowledged_by"] == "ada@example.org"
    assert [r.outcome for r in audit_rows(db, "acknowledge")] == ["ok"]
    [use] = audit_rows(db, "api-token-use")
    assert use.detail["path"] == f"/api/v1/messages/{a}/acknowledge"
    response = fresh(api, "POST", f"/api/v1/messages/{a}/unacknowledge", headers=bearer(token))
    assert response.get_json()["acknowledged"] is False
    # Out of scope: 404; in scope without the right (D is BL06 but C is not): 404 too.
    b = seeded.ids["B"]
    response = fresh(api, "POST", f"/api/v1/messages/{b}/acknowledge", headers=bearer(token))
    assert response.status_code == 404 and response.get_json()["status"] == 404


def test_acknowledge_without_the_right_is_403(
    app, db, client, auth_enabled, seeded, make_group, make_user
):
    group = make_group("user-office", message_types=["user-sync"], can_reingest=True)
    user = make_user("bob", groups=[group])
    token = create_token(client, user)
    c = seeded.ids["C"]
    response = fresh(
        app.test_client(), "POST", f"/api/v1/messages/{c}/acknowledge", headers=bearer(token)
    )
    assert response.status_code == 403
    assert [r.outcome for r in audit_rows(db, "acknowledge")] == ["denied"]


def test_cookie_requests_to_the_api_need_csrf(app, db, client, auth_enabled, seeded, bl06_user):
    login(client, bl06_user)
    a = seeded.ids["A"]
    response = fresh(client, "POST", f"/api/v1/messages/{a}/acknowledge")
    assert response.status_code == 400
    assert not audit_rows(db, "acknowledge")
    csrf = session_csrf(client)
    response = fresh(
        client, "POST", f"/api/v1/messages/{a}/acknowledge", headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 200


def test_bulk_acknowledge_through_a_token(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    api = app.test_client()
    preview = fresh(api, "GET", "/api/v1/actions/acknowledge?status=errored", headers=bearer(token))
    assert preview.status_code == 200
    body = preview.get_json()
    assert body["count"] == 2 and body["through_id"] >= max(seeded.ids.values())
    missing = fresh(
        api,
        "POST",
        "/api/v1/actions/acknowledge",
        headers=bearer(token),
        json={"status": "errored"},
    )
    assert missing.status_code == 400 and missing.get_json()["field"] == "through_id"
    wrong = fresh(
        api,
        "POST",
        "/api/v1/actions/acknowledge",
        headers=bearer(token),
        json={"status": "errored", "through_id": body["through_id"], "expected": 5},
    )
    assert wrong.status_code == 409 and wrong.get_json()["field"] == "expected"
    done = fresh(
        api,
        "POST",
        "/api/v1/actions/acknowledge",
        headers=bearer(token),
        json={"status": "errored", "through_id": body["through_id"], "expected": 2},
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["count"] == 2
    [row] = audit_rows(db, "bulk-acknowledge")
    assert sorted(row.message_ids) == sorted([seeded.ids["A"], seeded.ids["D"]])
    bad = fresh(
        api, "POST", "/api/v1/actions/acknowledge", headers=bearer(token), json={"mode": "x"}
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "mode"


@pytest.fixture
def reingester(make_group, make_user):
    group = make_group(
        "user-office", message_types=["user-sync"], can_reingest=True, can_acknowledge=True
    )
    return make_user("carol", groups=[group])


def test_reingest_through_a_token_uses_the_allow_list(
    app, db, client, auth_enabled, seeded, reingester, reingest_allowed
):
    from models import Message

    token = create_token(client, reingester)
    api = app.test_client()
    c = seeded.ids["C"]
    refused = fresh(api, "POST", f"/api/v1/messages/{c}/reingest", headers=bearer(token), json={})
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert refused.get_json()["field"] == "exchange"
    assert [r.outcome for r in audit_rows(db, "reingest")] == ["refused"]

    exchange = db.session.scalars(select(Message.exchange_name).where(Message.id == c)).one()
    reingest_allowed(exchange)
    bad = fresh(
        api,
        "POST",
        f"/api/v1/messages/{c}/reingest",
        headers=bearer(token),
        json={"payload": "{not json"},
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "payload"
    key = fresh(
        api,
        "POST",
        f"/api/v1/messages/{c}/reingest",
        headers=bearer(token),
        json={"routing_key": "never.seen"},
    )
    assert key.status_code == 400 and key.get_json()["field"] == "routing_key"
    # The seeded exchange exists on no broker: the publish fails, answered 502 and audited.
    failed = fresh(api, "POST", f"/api/v1/messages/{c}/reingest", headers=bearer(token), json={})
    assert failed.status_code == 502 and failed.get_json()["outcome"] == "error"
    outcomes = [r.outcome for r in audit_rows(db, "reingest")]
    assert outcomes == ["refused", "error", "error", "error"]
    assert len(audit_rows(db, "api-token-use")) == 4
    # Not in the token user's re-ingest grant: 404 (out of scope).
    a = seeded.ids["A"]
    response = fresh(api, "POST", f"/api/v1/messages/{a}/reingest", headers=bearer(token))
    assert response.status_code == 404


def test_bulk_reingest_job_through_a_token(
    app, db, client, auth_enabled, seeded, reingester, reingest_allowed
):
    from models import Message

    c = seeded.ids["C"]
    exchange = db.session.scalars(select(Message.exchange_name).where(Message.id == c)).one()
    reingest_allowed(exchange)
    token = create_token(client, reingester)
    api = app.test_client()
    preview = fresh(api, "GET", "/api/v1/actions/reingest", headers=bearer(token))
    assert preview.status_code == 200, preview.get_data(as_text=True)
    body = preview.get_json()
    assert body["count"] == 1
    # As for acknowledge: a count other than the confirmed one is a 409, nothing started.
    wrong = fresh(
        api,
        "POST",
        "/api/v1/actions/reingest",
        headers=bearer(token),
        json={"through_id": body["through_id"], "expected": 2},
    )
    assert wrong.status_code == 409, wrong.get_data(as_text=True)
    assert wrong.get_json()["field"] == "expected"
    assert "1 message matches now, not the 2 confirmed" in wrong.get_json()["message"]
    assert [r.outcome for r in audit_rows(db, "bulk-reingest")] == ["refused"]
    started = fresh(
        api,
        "POST",
        "/api/v1/actions/reingest",
        headers=bearer(token),
        json={"through_id": body["through_id"], "expected": 1},
    )
    assert started.status_code == 202, started.get_data(as_text=True)
    job = started.get_json()
    assert job["status_url"] == f"/api/v1/jobs/{job['job_id']}"
    status = fresh(api, "GET", job["status_url"], headers=bearer(token))
    assert status.status_code == 200 and status.get_json()["job_id"] == job["job_id"]
    # Someone else's job is not found.
    assert fresh(api, "GET", job["status_url"]).status_code == 404


def test_out_of_range_ids_are_404(app, db, client):
    huge = 2**70
    assert client.get(f"/api/v1/jobs/{huge}").status_code == 404
    assert client.get(f"/api/v1/messages/{huge}").status_code == 404
    csrf = session_csrf(client, "/")
    response = client.post(f"/api/v1/messages/{huge}/acknowledge", headers={"X-CSRFToken": csrf})
    assert response.status_code == 404


def test_bulk_preview_of_selected_ids(app, db, client, auth_enabled, seeded, bl06_user):
    token = create_token(client, bl06_user)
    ids = f"{seeded.ids['A']},{seeded.ids['B']}"  # B is out of the user's scope
    preview = fresh(
        app.test_client(), "GET", f"/api/v1/actions/acknowledge?ids={ids}", headers=bearer(token)
    )
    assert preview.status_code == 200 and preview.get_json()["count"] == 1


def test_bulk_preview_of_many_ids_is_posted(app, db, client, auth_enabled, seeded, bl06_user):
    """1,000 ids would outgrow a URL: the preview is also a POST with step=preview (JSON body),
    which changes nothing; the cap and a bad step are 400s naming their field."""
    from models import Message

    token = create_token(client, bl06_user)
    api = app.test_client()
    chosen = [seeded.ids["A"], seeded.ids["B"]] + list(range(10**9, 10**9 + 998))
    for path in ("/api/v1/actions/acknowledge", "/api/v1/actions/reingest"):
        preview = fresh(
            api, "POST", path, headers=bearer(token), json={"step": "preview", "ids": chosen}
        )
        if path.endswith("reingest"):  # bl06_user may not re-ingest
            assert preview.status_code == 403
            continue
        assert preview.status_code == 200, preview.get_data(as_text=True)
        body = preview.get_json()
        assert body["count"] == 1 and body["through_id"] >= seeded.ids["A"]  # B: not in scope
    assert not audit_rows(db, "bulk-acknowledge")
    assert db.session.query(Message).filter(Message.acknowledged_at.is_not(None)).count() == 0
    over = fresh(
        api,
        "POST",
        "/api/v1/actions/acknowledge",
        headers=bearer(token),
        json={"step": "preview", "ids": list(range(1, 1002))},
    )
    assert over.status_code == 400 and over.get_json()["field"] == "ids"
    bad = fresh(
        api, "POST", "/api/v1/actions/acknowledge", headers=bearer(token), json={"step": "go"}
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "step"
