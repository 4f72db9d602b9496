"""/alerts pages: administrators manage rules (CSRF, validated, audited), see incidents and their
history, snooze and mute; nobody else gets in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models import AlertRule, AuditLog, Incident
from tests.alerts.test_evaluation import _evaluate, _rule, _store
from tests.auth.support import ADMIN_GROUP, csrf_token, login

RULE_FORM = {
    "name": "user sync alive",
    "kind": "silence",
    "message_type": "user-sync",
    "threshold": "10",
    "window_minutes": "15",
    "min_messages": "10",
    "emails": "ops@example.org, night@example.org",
    "webhook_url": "https://chat.example.org/hooks/abc",
    "webhook_format": "text",
    "is_enabled": "on",
}


def test_admin_creates_edits_mutes_and_deletes_a_rule(client, db):
    page = client.get("/alerts/rules/new")
    assert page.status_code == 200 and b'name="csrf_token"' in page.data
    # Without the CSRF token: refused.
    assert client.post("/alerts/rules/new", data=RULE_FORM).status_code == 400
    token = csrf_token(client)
    response = client.post("/alerts/rules/new", data={**RULE_FORM, "csrf_token": token})
    assert response.status_code == 303
    rule = db.session.scalars(select(AlertRule)).one()
    assert rule.emails == ["ops@example.org", "night@example.org"]
    assert rule.threshold == 10 and rule.webhook_format == "text"
    listing = client.get("/alerts/rules").get_data(as_text=True)
    assert "user sync alive" in listing and "webhook (text)" in listing

    bad = client.post(
        f"/alerts/rules/{rule.id}/edit",
        data={**RULE_FORM, "webhook_url": "file:///etc/passwd", "csrf_token": token},
    )
    assert bad.status_code == 400
    assert 'data-error-field="webhook_url"' in bad.get_data(as_text=True)
    ok = client.post(
        f"/alerts/rules/{rule.id}/edit",
        data={**RULE_FORM, "threshold": "20", "csrf_token": token},
    )
    assert ok.status_code == 303
    db.session.expire_all()
    assert db.session.get(AlertRule, rule.id).threshold == 20

    client.post(f"/alerts/rules/{rule.id}/mute", data={"minutes": "120", "csrf_token": token})
    db.session.expire_all()
    assert db.session.get(AlertRule, rule.id).muted_until > datetime.now(UTC) + timedelta(
        minutes=100
    )
    assert "data-muted" in client.get("/alerts/rules").get_data(as_text=True)

    client.post(f"/alerts/rules/{rule.id}/delete", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.scalars(select(AlertRule)).all() == []
    actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == [
        "alert-rule-create",
        "alert-rule-edit",
        "alert-rule-mute",
        "alert-rule-delete",
    ]


def test_incidents_page_history_and_snooze(client, db, pg, settings):
    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    _store(pg, settings, now - timedelta(minutes=30), message_type="proposal-sync")
    _rule(db, name="syncs alive", kind="silence", message_type=None, threshold=10)
    run = _evaluate(db, settings, now)
    assert len(run.opened) == 2
    _store(pg, settings, now + timedelta(seconds=1), message_type="proposal-sync")
    _evaluate(db, settings, now + timedelta(seconds=2))

    page = client.get("/alerts").get_data(as_text=True)
    assert "user-sync has been silent for 30 minutes" in page
    tiles = {
        s: f'data-state="{s}"><span class="tile-count">{n}</span>'
        for s, n in (("open", 1), ("snoozed", 0), ("resolved", 1))
    }
    assert all(tile in page for tile in tiles.values()), page
    assert 'data-state="resolved"' in page and 'data-state="open"' in page
    resolved = client.get("/alerts?state=resolved").get_data(as_text=True)
    assert "proposal-sync" in resolved and "user-sync has been" not in resolved

    user_sync = db.session.scalars(select(Incident).where(Incident.key == "user-sync")).one()
    token = csrf_token(client)
    response = client.post(
        f"/alerts/incidents/{user_sync.id}/snooze",
        data={"minutes": "30", "csrf_token": token, "next": "list"},
    )
    assert response.status_code == 303
    snoozed = client.get("/alerts?state=snoozed").get_data(as_text=True)
    assert f'data-incident-id="{user_sync.id}"' in snoozed
    assert 'data-action="wake"' in snoozed
    detail = client.get(f"/alerts/incidents/{user_sync.id}").get_data(as_text=True)
    assert "Snoozed until" in detail and "ops@example.org" in detail
    assert db.session.scalars(select(AuditLog.action)).all() == ["alert-incident-snooze"]


def test_only_administrators_reach_alerts(client, db, auth_enabled, make_user, make_group):
    viewer = make_user("viewer", groups=[make_group("Viewers")])
    assert client.get("/alerts").status_code in (302, 401, 403)
    login(client, viewer)
    for path in ("/alerts", "/alerts/rules", "/alerts/rules/new"):
        assert client.get(path).status_code == 403, path
    assert "/alerts" not in client.get("/").get_data(as_text=True).split("<main")[0]
    admin = make_user("boss", groups=[make_group(ADMIN_GROUP)])
    login(client, admin)
    assert client.get("/alerts").status_code == 200
    assert 'href="/alerts"' in client.get("/").get_data(as_text=True)


def test_out_of_range_ids_are_404_or_400_never_500(client, db):
    huge = 10**20
    assert client.get(f"/alerts/incidents/{huge}").status_code == 404
    assert client.get(f"/alerts/rules/{huge}/edit").status_code == 404
    assert client.get(f"/alerts?before={huge}").status_code == 400
    assert client.get("/alerts?state=bogus").status_code == 400
    token = csrf_token(client)
    data = {"csrf_token": token, "minutes": "30"}
    assert client.post(f"/alerts/rules/{2**31}/mute", data=data).status_code == 404
    assert client.post("/alerts/rules/1/mute", data=data).status_code == 404


def test_help_says_what_alerts_answer(client, db):
    text = client.get("/help").get_data(as_text=True)
    assert 'href="/alerts">Alerts</a> (administrators)' in text
    assert "one when it resolves" in text
