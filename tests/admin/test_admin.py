"""/admin: the group rule editor, users, audit log, quarantine replay, partitions."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.auth.support import ADMIN_GROUP, csrf_token, login
from tests.factories import report_body


def test_group_rule_editor_creates_a_scope(app, db, client, seeded):
    from models import AuditLog, Group

    form = client.get("/admin/groups/new/")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    # Types are chosen from the known types (the rollups of what was ingested).
    for known in ("dataset-ingestion", "user-sync", "proposal-sync"):
        assert f'value="{known}"' in html

    response = client.post(
        "/admin/groups/new/",
        data={
            "csrf_token": csrf_token(client),
            "name": "bl06-team",
            "message_types": ["dataset-ingestion", "proposal-sync"],
            "identifier_rules": "instrument: BL06, bl09\ninvestigation: INVMARKA",
            "can_acknowledge": "y",
            "reingest_message_types": [],
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    group = db.session.query(Group).filter_by(name="bl06-team").one()
    assert group.message_types == ["dataset-ingestion", "proposal-sync"]
    assert group.identifier_rules == {"instrument": ["BL06", "bl09"], "investigation": ["INVMARKA"]}
    assert group.can_acknowledge and not group.can_reingest
    audit = db.session.query(AuditLog).filter_by(action="admin-create-groups").one()
    assert audit.actor == "anonymous (auth disabled)"

    listing = client.get("/admin/groups/").get_data(as_text=True)
    assert "instrument ∈ {BL06, bl09}" in listing


def test_group_rule_editor_refuses_bad_input(app, db, client, seeded):
    from models import Group

    token = csrf_token(client)
    bad_rule = client.post(
        "/admin/groups/new/",
        data={"csrf_token": token, "name": "x", "identifier_rules": "instrument BL06"},
    )
    assert bad_rule.status_code == 200  # the form again, with the error
    assert "expected `identifier: value, value`" in bad_rule.get_data(as_text=True)
    unknown_type = client.post(
        "/admin/groups/new/",
        data={"csrf_token": token, "name": "y", "message_types": ["no-such-type"]},
    )
    assert "Not a valid choice" in unknown_type.get_data(as_text=True) or (
        "unknown message type" in unknown_type.get_data(as_text=True)
    )
    assert db.session.query(Group).count() == 0


def test_admin_post_without_csrf_is_rejected(app, db, client):
    response = client.post("/admin/groups/new/", data={"name": "sneaky"})
    assert response.status_code == 400


def test_admin_edits_membership_and_it_applies_next_request(
    app, db, client, auth_enabled, seeded, make_group, make_user
):
    admins = make_group(ADMIN_GROUP)
    team = make_group("team", identifier_rules={"instrument": ["bl13"]}, can_acknowledge=True)
    member = make_user("member")
    login(client, make_user("boss", [admins]))

    response = client.post(
        f"/admin/users/edit/?id={member.id}",
        data={
            "csrf_token": csrf_token(client),
            "email": member.email,
            "name": "",
            "active": "y",
            "groups": [str(team.id)],
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert [g.name for g in member.groups] == ["team"]

    other = app.test_client()
    login(other, member)
    preview = other.get("/actions/acknowledge", query_string={"status": "errored"})
    assert 'data-count="2"' in preview.get_data(as_text=True)  # B and E, on bl13
    assert other.get("/admin/").status_code == 403


def test_audit_log_is_read_only(app, db, client):
    assert client.get("/admin/audit/").status_code == 200
    assert client.get("/admin/audit/new/").status_code in (302, 403, 404)
    token = csrf_token(client)
    assert client.post(
        "/admin/audit/delete/", data={"csrf_token": token, "id": "1"}
    ).status_code in (
        302,
        403,
        404,
    )


def test_quarantine_view_and_replay(app, db, client):
    from models import AuditLog, Message, QuarantinedReport

    body = report_body(message_type="user-sync", object_identifiers={"profile_id": "p1"})
    db.session.add(
        QuarantinedReport(
            received_at=datetime.now(UTC),
            body=body,
            reason="missing message_type (parser bug, fixed since)",
            content_type="application/json",
            headers={},
            routing_key="message.logging",
        )
    )
    db.session.commit()
    quarantined = db.session.query(QuarantinedReport).one()
    listing = client.get("/admin/quarantine/").get_data(as_text=True)
    assert "parser bug, fixed since" in listing
    details = client.get(f"/admin/quarantine/details/?id={quarantined.id}")
    assert details.status_code == 200
    assert "dashboard.tasks.log_pacer_message" in details.get_data(as_text=True)

    response = client.post(
        "/admin/quarantine/action/",
        data={"csrf_token": csrf_token(client), "action": "replay", "rowid": [str(quarantined.id)]},
    )
    assert response.status_code == 302
    db.session.expire_all()
    quarantined = db.session.query(QuarantinedReport).one()
    assert quarantined.replayed_at is not None
    assert db.session.query(Message).filter_by(message_type="user-sync").count() == 1
    audit = db.session.query(AuditLog).filter_by(action="quarantine-replay").one()
    assert audit.outcome == "ok" and audit.detail["ingested"] == 1


def test_partitions_page(app, db, client):
    response = client.get("/admin/partitions/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "messages_p" in html and "DEFAULT" in html


def test_admin_pages_use_a_nonce_not_unsafe_inline(app, db, client):
    response = client.get("/admin/groups/new/")
    csp = response.headers["Content-Security-Policy"]
    assert "'nonce-" in csp
    assert "unsafe-inline" not in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.get_data(as_text=True)


def test_group_saved_under_its_own_name(app, db, client, make_group):
    """Editing a group's rules without renaming it is not "Already exists"; another group's
    name still is."""
    from models import Group

    team = make_group("team", identifier_rules={"instrument": ["bl06"]})
    make_group("other")
    token = csrf_token(client)
    response = client.post(
        f"/admin/groups/edit/?id={team.id}",
        data={"csrf_token": token, "name": "team", "identifier_rules": "instrument: bl13"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Group, team.id).identifier_rules == {"instrument": ["bl13"]}

    taken = client.post(
        f"/admin/groups/edit/?id={team.id}",
        data={"csrf_token": token, "name": "other", "identifier_rules": ""},
    )
    assert taken.status_code == 200
    assert "Already exists" in taken.get_data(as_text=True)


def test_admin_pages_have_no_inline_handlers(app, db, client, make_group):
    """The Content-Security-Policy blocks inline handlers: no page of /admin may carry one."""
    import re

    from models import QuarantinedReport

    group = make_group("team")
    db.session.add(
        QuarantinedReport(
            received_at=datetime.now(UTC),
            body=b"x",
            reason="r",
            content_type="text/plain",
            headers={},
            routing_key="k",
        )
    )
    db.session.commit()
    for path in (
        "/admin/",
        "/admin/groups/",
        "/admin/groups/new/",
        f"/admin/groups/edit/?id={group.id}",
        "/admin/users/",
        "/admin/audit/",
        "/admin/quarantine/",
        "/admin/partitions/",
    ):
        html = client.get(path).get_data(as_text=True)
        assert re.findall(r"<[^>]*\son[a-z]+\s*=", html) == [], path
        assert "/static/js/admin.js" in html, path


def test_quarantine_replay_of_only_invalid_ids_replays_nothing(app, db, client):
    """Ids that are no quarantine id at all select nothing; they used to become an empty list,
    which replay_quarantine read as "every waiting body"."""
    from models import AuditLog, Message, QuarantinedReport

    db.session.add(
        QuarantinedReport(
            received_at=datetime.now(UTC),
            body=report_body(message_type="user-sync"),
            reason="waiting for someone to look at it",
            content_type="application/json",
            headers={},
            routing_key="message.logging",
        )
    )
    db.session.commit()
    response = client.post(
        "/admin/quarantine/action/",
        data={"csrf_token": csrf_token(client), "action": "replay", "rowid": ["abc", "0"]},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.query(QuarantinedReport).one().replayed_at is None
    assert db.session.query(Message).count() == 0
    audit = db.session.query(AuditLog).filter_by(action="quarantine-replay").one()
    assert audit.detail["ingested"] == 0
