"""Fixtures and helpers for permission tests: users, groups, seeded messages with markers, logins.

Imported by the conftest of tests/auth, tests/actions and tests/admin. Logging in is done the way
Flask-Login itself stores a login (the user id in the signed session), from the test side only:
there is no login backdoor in the application.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import report_body

ADMIN_GROUP = "Administrator"
#: Exchanges of the seeded messages exist nowhere: a permitted re-ingest fails at the broker
#: instead of publishing into somebody's real exchange.
EXCHANGE_SUFFIX = "-test-" + uuid.uuid4().hex[:8]


@pytest.fixture
def auth_enabled(app):
    """The session app with DISABLED_AUTH=false (restored after the test)."""
    original = app.extensions["settings"]
    app.extensions["settings"] = dataclasses.replace(
        original,
        DISABLED_AUTH=False,
        SSO_SERVER_URL="https://sso.example.org/realms/facility",
        SSO_CLIENT_ID="pacer-dashboard",
        SSO_CLIENT_SECRET="not-used-in-these-tests",
        ADMIN_GROUP=ADMIN_GROUP,
    )
    yield app.extensions["settings"]
    app.extensions["settings"] = original


@pytest.fixture
def reingest_allowed(app):
    """Factory: allow re-ingest to these exchanges (REINGEST_EXCHANGES) for this test, published
    as the main broker user (a test's own exchanges are outside the re-ingest broker user's
    write permission). The settings are restored after the test."""
    original = app.extensions["settings"]

    def allow(*exchanges: str):
        app.extensions["settings"] = dataclasses.replace(
            app.extensions["settings"],
            REINGEST_EXCHANGES=tuple(exchanges),
            REINGEST_RMQ_USERNAME="",
            REINGEST_RMQ_PASSWORD="",
        )
        return app.extensions["settings"]

    yield allow
    app.extensions["settings"] = original


@pytest.fixture
def make_group(db):
    from models import Group

    def make(name: str, **fields) -> Group:
        group = Group(
            name=name,
            message_types=fields.pop("message_types", []),
            identifier_rules=fields.pop("identifier_rules", {}),
            can_acknowledge=fields.pop("can_acknowledge", False),
            can_reingest=fields.pop("can_reingest", False),
            reingest_message_types=fields.pop("reingest_message_types", []),
            synced_from_sso=fields.pop("synced_from_sso", False),
            **fields,
        )
        db.session.add(group)
        db.session.commit()
        return group

    return make


@pytest.fixture
def make_user(db):
    from models import User

    def make(sub: str, groups=(), **fields) -> User:
        user = User(sub=sub, email=fields.pop("email", f"{sub}@example.org"), **fields)
        user.groups = list(groups)
        db.session.add(user)
        db.session.commit()
        return user

    return make


def login(client, user) -> str:
    """Log `user` in on this test client: what the OIDC callback stores (a server-side session
    row, and in the signed cookie the user id as flask_login.login_user does, plus the session
    token). Returns the token."""
    from flask import g, has_app_context

    from webapp.auth import sessions
    from webapp.extensions import db

    token = sessions.start(user)
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session[sessions.SESSION_KEY] = token
    if has_app_context():
        # Tests keep one app context across requests; Flask-Login caches the user on `g`.
        g.pop("_login_user", None)
    return token


def csrf_token(client, path: str = "/no-such-page") -> str:
    """The CSRF token of the client's session, read from the page's <meta name="csrf-token">."""
    response = client.get(path)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.get_data(as_text=True))
    assert match, f"no csrf meta tag on {path} ({response.status_code})"
    return match.group(1)


@dataclass
class Seeded:
    """Ids of the seeded messages by key, and the marker strings of each."""

    ids: dict[str, int]
    markers: dict[str, list[str]]
    hashes: dict[str, str]


#: key -> (message_type, identifiers, exchange, routing key, hash). Every free-text value holds a
#: marker unique to its message so a test can tell whose details leaked where.
SEED = {
    "A": (
        "dataset-ingestion",
        {"instrument": "BL06", "investigation": "INVMARKA", "dataset": "DSMARKA"},
        "dataset-ingest-exchange",
        "dataset.ingest",
        "aaaa0000aaaa0001",
    ),
    "B": (
        "dataset-ingestion",
        {"instrument": "bl13", "investigation": "INVMARKB", "dataset": "DSMARKB"},
        "dataset-ingest-exchange",
        "dataset.ingest",
        "bbbb0000bbbb0002",
    ),
    "C": (
        "user-sync",
        {"profile_id": "PROFMARKC", "usernames": ["USERMARKC"]},
        "user-sync-exchange",
        "user.sync",
        "cccc0000cccc0003",
    ),
    "D": (
        "proposal-sync",
        {"name": "PROPMARKD", "instrument": "Bl06", "visit_id": "VISITMARKD"},
        "proposal-sync-exchange",
        "proposal.sync",
        "dddd0000dddd0004",
    ),
    # Same hash as A (a later pipeline stage), on another instrument: linked in A's trace.
    "E": (
        "internal-dataset-ingestion",
        {"instrument": "BL13", "investigation": "INVMARKE", "dataset": "DSMARKE"},
        "internal-dataset-exchange",
        "internal.dataset.ingest",
        "aaaa0000aaaa0001",
    ),
}


@pytest.fixture
def seeded(app, db) -> Seeded:
    """Five errored messages written by the real ingestion writer (rollups, error groups too)."""
    from webapp.ingest.writer import ParseOptions, RawReport, write_batch

    settings = app.extensions["settings"]
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    raws, markers, hashes, report_ids = [], {}, {}, {}
    for key, (mtype, identifiers, exchange, routing_key, digest) in SEED.items():
        payload_marker = f"PAYLOADMARK{key}"
        error_marker = f"ERRTEXTMARK{key}"
        report_id = f"00000000-0000-4000-8000-00000000000{ord(key) - 64}"
        body = report_body(
            id=report_id,
            message_type=mtype,
            object_identifiers=identifiers,
            payload=f'{{"note": "{payload_marker}"}}',
            errored=True,
            error_message={f"callback_func_{key.lower()}": f"RuntimeError: {error_marker} failed"},
            exchange_name=exchange + EXCHANGE_SUFFIX,
            routing_key=routing_key,
            hash=digest,
        )
        raws.append(RawReport(body=body, content_type="application/json"))
        report_ids[key] = report_id
        values = [v for v in identifiers.values() if isinstance(v, str)]
        values += [u for v in identifiers.values() if isinstance(v, list) for u in v]
        markers[key] = [payload_marker, error_marker] + [v for v in values if "MARK" in v]
        hashes[key] = digest
    raw_conn = db.engine.raw_connection()
    try:
        result = write_batch(raw_conn.dbapi_connection, raws, options)
    finally:
        raw_conn.close()
    ids = {key: result.ids_by_report[rid] for key, rid in report_ids.items()}
    return Seeded(ids=ids, markers=markers, hashes=hashes)
