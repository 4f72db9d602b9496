"""The scope itself: SQL and Python agree, rules are case-insensitive, union of groups, no caching."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.auth.support import ADMIN_GROUP, login


def visible(db, scope, seeded) -> set[str]:
    from models import Message

    ids = set(db.session.scalars(scope.apply(select(Message.id), Message)))
    return {key for key, message_id in seeded.ids.items() if message_id in ids}


def python_visible(db, scope, seeded) -> set[str]:
    from models import Message

    rows = db.session.scalars(select(Message)).all()
    by_id = {m.id: m for m in rows}
    return {key for key, message_id in seeded.ids.items() if scope.matches(by_id[message_id])}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([{"identifier_rules": {"instrument": ["bl06"]}}], {"A", "D"}),
        ([{"identifier_rules": {"instrument": ["BL13"]}}], {"B", "E"}),
        ([{"message_types": ["user-sync"]}], {"C"}),
        # Types AND identifiers: dataset-ingestion on BL06 only.
        (
            [
                {
                    "message_types": ["dataset-ingestion"],
                    "identifier_rules": {"instrument": ["Bl06"]},
                }
            ],
            {"A"},
        ),
        # A key held only in object_identifiers (jsonb), and a list-valued identifier.
        ([{"identifier_rules": {"profile_id": ["profmarkc"]}}], {"C"}),
        ([{"identifier_rules": {"usernames": ["usermarkc", "nobody"]}}], {"C"}),
        # A promoted column other than instrument, compared case-insensitively.
        ([{"identifier_rules": {"investigation": ["invmarkb"]}}], {"B"}),
        # Messages lacking the identifier do not match (C has no instrument).
        ([{"identifier_rules": {"instrument": ["BL06", "BL13"]}}], {"A", "B", "D", "E"}),
        # Two rules: both must match.
        ([{"identifier_rules": {"instrument": ["bl06"], "visit_id": ["VISITMARKD"]}}], {"D"}),
        # Union of groups.
        (
            [
                {"message_types": ["user-sync"]},
                {
                    "identifier_rules": {"instrument": ["bl13"]},
                    "message_types": ["dataset-ingestion"],
                },
            ],
            {"B", "C"},
        ),
        # A group with no restriction sees everything.
        ([{}], set("ABCDE")),
    ],
)
def test_scope_sql_and_python_agree(
    app, db, auth_enabled, seeded, make_group, make_user, groups, expected
):
    from webapp.auth.scope import scope_for_user

    made = [make_group(f"g{i}", **fields) for i, fields in enumerate(groups)]
    user = make_user("u", made)
    scope = scope_for_user(user)
    assert scope.details and not scope.see_all and not scope.is_admin
    assert visible(db, scope, seeded) == expected
    assert python_visible(db, scope, seeded) == expected


def test_anonymous_groupless_admin_and_disabled(
    app, db, auth_enabled, seeded, make_group, make_user
):
    from webapp.auth.scope import ANONYMOUS, scope_for_user

    everything = set("ABCDE")
    assert visible(db, ANONYMOUS, seeded) == everything
    assert (
        not ANONYMOUS.details and not ANONYMOUS.can_acknowledge() and not ANONYMOUS.can_reingest()
    )

    lonely = scope_for_user(make_user("lonely"))
    assert visible(db, lonely, seeded) == everything and not lonely.details
    assert lonely.actor == "lonely@example.org"

    admin = scope_for_user(make_user("boss", [make_group(ADMIN_GROUP)]))
    assert admin.is_admin and admin.see_all and admin.details and admin.can_reingest("x")

    inactive = make_user("gone", [make_group("ops", can_acknowledge=True)], active=False)
    assert scope_for_user(inactive) == ANONYMOUS


def test_actions_follow_the_group_that_sees_the_message(
    app, db, auth_enabled, seeded, make_group, make_user
):
    from models import Message
    from webapp.auth.scope import scope_for_user

    ack_bl06 = make_group(
        "ack-bl06", identifier_rules={"instrument": ["bl06"]}, can_acknowledge=True
    )
    reingest_users = make_group("reingest", can_reingest=True, reingest_message_types=["user-sync"])
    scope = scope_for_user(make_user("op", [ack_bl06, reingest_users]))
    rows = {
        key: db.session.scalar(select(Message).where(Message.id == message_id))
        for key, message_id in seeded.ids.items()
    }
    assert {k for k, m in rows.items() if scope.can_acknowledge(m)} == {"A", "D"}
    assert {k for k, m in rows.items() if scope.can_reingest(row=m)} == {"C"}
    ack_ids = set(
        db.session.scalars(select(Message.id).where(scope.action_clause(Message, "acknowledge")))
    )
    assert ack_ids == {seeded.ids["A"], seeded.ids["D"]}
    reingest_ids = set(
        db.session.scalars(select(Message.id).where(scope.action_clause(Message, "reingest")))
    )
    assert reingest_ids == {seeded.ids["C"]}


def test_permission_change_applies_at_the_next_request(
    app, db, client, auth_enabled, seeded, make_group, make_user
):
    """No caching beyond the request: adding a rule to the group narrows the very next page."""
    group = make_group("team", can_acknowledge=True)
    login(client, make_user("member", [group]))
    preview = client.get("/actions/acknowledge", query_string={"status": "errored"})
    assert 'data-count="5"' in preview.get_data(as_text=True)

    group.identifier_rules = {"instrument": ["BL13"]}
    db.session.commit()
    preview = client.get("/actions/acknowledge", query_string={"status": "errored"})
    assert 'data-count="2"' in preview.get_data(as_text=True)

    group.can_acknowledge = False
    db.session.commit()
    assert client.get("/actions/acknowledge").status_code == 403


def test_one_field_rule_for_metadata_only_users():
    """DESIGN §7 as one rule: metadata for everyone; payloads, identifiers, error texts and what
    is read from them only with details. The CSV export's columns follow the same rule."""
    from webapp.auth.scope import ANONYMOUS, METADATA_FIELDS, admin_scope
    from webapp.messages.presenters import CSV_COLUMNS, CSV_DETAIL_COLUMNS

    sensitive = (
        "payload",
        "identifiers",
        "instrument",
        "investigation",
        "dataset",
        "dataset_id",
        "visit_id",
        "error_message",
        "error_summary",
        "traceback",
        "extra",
        "error_fingerprint",
        "fingerprint",
        "callback",
        "exception_class",
        "normalized_text",
        "sample_error",
        "sample_message_id",
        "instruments",
    )
    shown = ("id", "message_type", "status", "received_at", "routing_key", "hash", "count")
    row = {name: name for name in sensitive + shown}
    assert ANONYMOUS.visible(row) == {name: name for name in shown}
    assert admin_scope().visible(row) == row
    assert not any(ANONYMOUS.can_see(name) for name in sensitive)
    assert all(ANONYMOUS.can_see(name) for name in shown)
    assert set(CSV_COLUMNS) <= METADATA_FIELDS
    assert not set(CSV_DETAIL_COLUMNS) & METADATA_FIELDS
