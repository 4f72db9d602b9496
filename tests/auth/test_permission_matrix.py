"""Permission matrix (DESIGN §7): every kind of user × every route, including what must NOT leak.

Seeded messages (tests/auth/support.py), all errored, each with marker strings in its payload,
identifiers and error text:

    A dataset-ingestion  instrument BL06          B dataset-ingestion  instrument bl13
    C user-sync          (no instrument)          D proposal-sync      instrument Bl06
    E internal-dataset-ingestion, instrument BL13, same hash as A (A's next pipeline stage)

Groups: `bl06-team` = instrument ∈ {BL06} (upper case, to prove case-insensitivity) + acknowledge;
`user-office` = type user-sync + re-ingest. Users: anonymous, group-less, bl06-team only,
user-office only, both groups, Administrator, and everyone with DISABLED_AUTH=true.

Routes another area has not shipped yet are xfailed at run time (not strict) with the reason, so
the row turns into a real check as soon as the route exists.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import pytest

from tests.auth.support import ADMIN_GROUP, csrf_token, login
from tests.factories import EXCHANGE_SUFFIX, SEED, Seeded

ALL = set("ABCDE")
PERSONAS = ("anonymous", "groupless", "instrument", "type", "two_groups", "admin", "disabled")

#: Rows each persona sees in lists (metadata).
ROWS = {
    "anonymous": ALL,
    "groupless": ALL,
    "instrument": {"A", "D"},
    "type": {"C"},
    "two_groups": {"A", "C", "D"},
    "admin": ALL,
    "disabled": ALL,
}
#: Messages whose payload, identifiers and error text each persona may see.
DETAILS = {
    "anonymous": set(),
    "groupless": set(),
    "instrument": {"A", "D"},
    "type": {"C"},
    "two_groups": {"A", "C", "D"},
    "admin": ALL,
    "disabled": ALL,
}
ACK = {
    "anonymous": set(),
    "groupless": set(),
    "instrument": {"A", "D"},
    "type": set(),
    "two_groups": {"A", "D"},
    "admin": ALL,
    "disabled": ALL,
}
REINGEST = {
    "anonymous": set(),
    "groupless": set(),
    "instrument": set(),
    "type": {"C"},
    "two_groups": {"C"},
    "admin": ALL,
    "disabled": ALL,
}


@dataclass
class Persona:
    name: str
    client: object
    seeded: Seeded
    app: object

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def leaked(self, text: str) -> list[str]:
        """Markers in `text` that belong to messages this persona may not see in detail."""
        hidden = ALL - DETAILS[self.name]
        return [m for key in sorted(hidden) for m in self.seeded.markers[key] if m in text]


@pytest.fixture(params=PERSONAS)
def who(request, app, client, make_group, make_user, seeded, reingest_allowed) -> Persona:
    name = request.param
    if name != "disabled":
        request.getfixturevalue("auth_enabled")
    # The seeded messages' exchanges are on the re-ingest allow-list (and exist nowhere).
    reingest_allowed(
        *sorted({exchange + EXCHANGE_SUFFIX for _, _, exchange, _, _ in SEED.values()})
    )
    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]}, can_acknowledge=True)
    office = make_group("user-office", message_types=["user-sync"], can_reingest=True)
    admins = make_group(ADMIN_GROUP)
    memberships = {
        "groupless": [],
        "instrument": [bl06],
        "type": [office],
        "two_groups": [bl06, office],
        "admin": [admins],
    }
    if name in memberships:
        login(client, make_user(name, memberships[name]))
    return Persona(name, client, seeded, app)


def require_route(app, rule: str) -> None:
    """xfail (not strict) while another area has not shipped `rule` yet."""
    if not any(r.rule == rule for r in app.url_map.iter_rules()):
        pytest.xfail(f"route {rule} does not exist yet (another area's issue)")


def message_ids_in(payload) -> set[int]:
    """Ids of message objects anywhere in an API answer."""
    found: set[int] = set()

    def walk(node):
        if isinstance(node, dict):
            if "id" in node and "message_type" in node and isinstance(node["id"], int):
                found.add(node["id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload)
    return found


def ids_of(who: Persona, keys) -> set[int]:
    return {who.seeded.ids[k] for k in keys}


# ---- pages -----------------------------------------------------------------------------------


def test_message_list(who):
    response = who.get("/")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    for key in "ABCD":  # E shares A's hash
        shown = who.seeded.hashes[key][:12] in text
        assert shown == (key in ROWS[who.name]), f"row {key} for {who.name}"


def test_message_list_free_text_is_no_oracle(who):
    """Searching identifier/error text must not reveal hidden content through the row count."""
    response = who.get("/", query_string={"q": "errtextmarkb"})
    assert response.status_code in (200, 400, 403)
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    if response.status_code == 200 and "B" not in DETAILS[who.name]:
        assert who.seeded.hashes["B"][:12] not in text


def test_message_count(who):
    """The list's deferred count (`/messages/count`) counts what the persona's list shows."""
    response = who.get("/messages/count", query_string={"acknowledged": "shown"})
    assert response.status_code == 200
    assert response.get_json()["count"] == len(ROWS[who.name])


def test_message_count_of_free_text_is_no_oracle(who):
    args = {"q": "errtextmarkb", "acknowledged": "shown"}
    response = who.get("/messages/count", query_string=args)
    assert response.status_code == who.get("/", query_string=args).status_code
    if response.status_code == 200:
        assert response.get_json()["count"] == (1 if "B" in DETAILS[who.name] else 0)


@pytest.mark.parametrize("key", sorted(ALL))
def test_message_detail(who, key):
    require_route(who.app, "/messages/<int:message_id>")
    response = who.get(f"/messages/{who.seeded.ids[key]}")
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    if key not in ROWS[who.name]:
        assert response.status_code == 404
    elif key in DETAILS[who.name]:
        assert response.status_code == 200
        assert f"PAYLOADMARK{key}" in text
        assert f"ERRTEXTMARK{key}" in text
    else:
        assert response.status_code in (200, 302, 401, 403)
    if response.status_code == 200:
        # The actions partial offers exactly the actions this user may take on this message.
        assert ('data-action="acknowledge"' in text) == (key in ACK[who.name])
        assert ('data-action="reingest"' in text) == (key in REINGEST[who.name])


@pytest.mark.parametrize("key", ["A", "C"])
def test_trace(who, key):
    require_route(who.app, "/messages/<int:message_id>/trace")
    response = who.get(f"/messages/{who.seeded.ids[key]}/trace")
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []  # E (A's next stage, instrument BL13) stays hidden from bl06
    if key not in ROWS[who.name]:
        assert response.status_code == 404
    else:
        assert response.status_code in (200, 302, 401, 403)


# ---- API and CSV -----------------------------------------------------------------------------


def test_api_list(who):
    require_route(who.app, "/api/v1/messages")
    response = who.get("/api/v1/messages", query_string={"acknowledged": "shown"})
    assert response.status_code == 200
    assert who.leaked(response.get_data(as_text=True)) == []
    assert message_ids_in(response.get_json()) == ids_of(who, ROWS[who.name])


@pytest.mark.parametrize("key", ["A", "B", "C"])
def test_api_detail(who, key):
    require_route(who.app, "/api/v1/messages/<int:message_id>")
    response = who.get(f"/api/v1/messages/{who.seeded.ids[key]}")
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    if key not in ROWS[who.name]:
        assert response.status_code == 404
    elif key in DETAILS[who.name]:
        assert response.status_code == 200
        assert f"PAYLOADMARK{key}" in text
    else:
        assert response.status_code in (200, 401, 403)


def test_csv_export(who):
    require_route(who.app, "/api/v1/messages")
    response = who.get("/api/v1/messages", query_string={"format": "csv", "acknowledged": "shown"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) - 1 == len(ROWS[who.name])


# ---- statistics and errors -------------------------------------------------------------------


def test_stats(who):
    require_route(who.app, "/api/v1/stats")
    for path in ("/stats", "/api/v1/stats"):
        response = who.get(path)
        assert response.status_code == 200, path
        assert who.leaked(response.get_data(as_text=True)) == [], path
    body = json.dumps(who.get("/api/v1/stats").get_json())
    if who.name == "instrument":
        assert "user-sync" not in body
        assert "internal-dataset-ingestion" not in body  # only E, on BL13
    if who.name == "type":
        assert "dataset-ingestion" not in body


def test_errors(who):
    require_route(who.app, "/api/v1/error-groups")
    for path in ("/errors", "/api/v1/error-groups"):
        response = who.get(path)
        assert response.status_code == 200, path
        assert who.leaked(response.get_data(as_text=True)) == [], path


#: Seeded error texts are `callback_func_<key>: RuntimeError: ERRTEXTMARK<key> failed`: the callback
#: and the exception class are read from the error text, so they are details too (DESIGN §7).
ERROR_CAUSE = ("callback_func_", "RuntimeError")
#: Fields of an error group a metadata-only user may see: counts by type and time.
GROUP_METADATA = {
    "count",
    "total",
    "acknowledged",
    "unacknowledged",
    "first_seen_at",
    "last_seen_at",
    "message_types",
}


def test_error_causes_only_with_details(who):
    """Metadata-only users get error counts by type and time: no callback, exception class,
    normalised text, sample or fingerprint, on any page or API."""
    for path in ("/errors", "/api/v1/error-groups", "/stats", "/api/v1/stats"):
        text = who.get(path).get_data(as_text=True)
        shown = [marker for marker in ERROR_CAUSE if marker in text]
        assert shown == ([] if not DETAILS[who.name] else list(ERROR_CAUSE)), path
    groups = who.get("/api/v1/error-groups").get_json()["items"]
    top = who.get("/api/v1/stats").get_json()["top_error_groups"]
    if DETAILS[who.name]:
        assert {g["exception_class"] for g in groups + top} == {"RuntimeError"}
        return
    for group in groups + top:
        assert set(group) <= GROUP_METADATA, sorted(set(group) - GROUP_METADATA)
    by_type = {tuple(g["message_types"]): g["count"] for g in groups}
    assert by_type == {
        ("dataset-ingestion",): 2,
        ("internal-dataset-ingestion",): 1,
        ("proposal-sync",): 1,
        ("user-sync",): 1,
    }
    # Each count leads to its messages: that type's errors.
    page = who.get("/errors").get_data(as_text=True)
    links = re.findall(r'<a class="button" href="([^"]+)">Messages</a>', page)
    assert len(links) == 4
    for link in links:
        listing = who.get(html.unescape(link))
        assert listing.status_code == 200, link
        assert "status=errored" in html.unescape(link)


def test_error_group_filter_needs_details(who, db):
    """Narrowing by an error fingerprint tells which messages share an error text."""
    fingerprints = [
        g.get("fingerprint") for g in who.get("/api/v1/error-groups").get_json()["items"]
    ]
    if not DETAILS[who.name]:
        assert fingerprints == [None] * len(fingerprints)
        from models import Message

        any_fingerprint = db.session.query(Message.error_fingerprint).limit(1).scalar()
        for path in ("/errors", "/api/v1/error-groups", "/stats", "/api/v1/stats"):
            response = who.get(path, query_string={"fingerprint": any_fingerprint})
            assert response.status_code == 403, path
    else:
        for path in ("/errors", "/api/v1/error-groups"):
            response = who.get(path, query_string={"fingerprint": fingerprints[0]})
            assert response.status_code == 200, path


#: Messages on the trace of A: A's hash links E for everyone who sees E; F (A's next stage by
#: instrument + investigation + dataset, another hash) only for those who may see identifiers.
TRACE_OF_A = {
    "anonymous": {"A", "E"},
    "groupless": {"A", "E"},
    "instrument": {"A", "F"},
    "two_groups": {"A", "F"},
    "admin": {"A", "E", "F"},
    "disabled": {"A", "E", "F"},
}


@pytest.fixture
def linked_by_identifiers(app, db, seeded) -> int:
    """F: an internal-dataset-ingestion of A's instrument, investigation and dataset under
    another hash (a trace links it to A through identifiers only). Returns its id."""
    from tests.factories import report_body
    from webapp.ingest.writer import ParseOptions, RawReport, write_batch

    settings = app.extensions["settings"]
    body = report_body(
        message_type="internal-dataset-ingestion",
        object_identifiers=SEED["A"][1],
        payload='{"note": "F"}',
        hash="ffff0000ffff0006",
        exchange_name="internal-dataset-exchange" + EXCHANGE_SUFFIX,
        routing_key="internal.dataset.ingest",
    )
    raw_conn = db.engine.raw_connection()
    try:
        result = write_batch(
            raw_conn.dbapi_connection,
            [RawReport(body=body, content_type="application/json")],
            ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES),
        )
    finally:
        raw_conn.close()
    return result.message_ids[0]


def test_trace_links_only_through_visible_fields(who, linked_by_identifiers):
    """A metadata-only user's trace follows the hash (visible metadata), never identifiers."""
    ids = {**who.seeded.ids, "F": linked_by_identifiers}
    message_id = ids["A"]
    api = who.get(f"/api/v1/messages/{message_id}/trace")
    page = who.get(f"/messages/{message_id}/trace")
    if "A" not in ROWS[who.name]:
        assert (api.status_code, page.status_code) == (404, 404)
        return
    assert (api.status_code, page.status_code) == (200, 200)
    names = {v: k for k, v in ids.items()}
    assert {names[i] for i in message_ids_in(api.get_json())} == TRACE_OF_A[who.name]
    shown = {int(i) for i in re.findall(r'data-id="(\d+)"', page.get_data(as_text=True))}
    assert {names[i] for i in shown} == TRACE_OF_A[who.name]


# ---- actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["A", "B", "C"])
def test_acknowledge(who, key, db):
    from models import AuditLog, Message

    token = csrf_token(who.client)
    message_id = who.seeded.ids[key]
    response = who.client.post(f"/messages/{message_id}/acknowledge", data={"csrf_token": token})
    db.session.expire_all()
    message = db.session.query(Message).filter_by(id=message_id).one()
    audit = db.session.query(AuditLog).filter(AuditLog.message_ids.contains([message_id])).all()
    if key not in ROWS[who.name]:
        assert response.status_code == 404
        assert message.acknowledged_at is None
    elif key in ACK[who.name]:
        assert response.status_code == 302
        assert message.acknowledged_at is not None
        assert [(a.action, a.outcome) for a in audit] == [("acknowledge", "ok")]
    else:
        assert response.status_code == 403
        assert message.acknowledged_at is None
        assert [(a.action, a.outcome) for a in audit] == [("acknowledge", "denied")]


@pytest.mark.parametrize("key", ["A", "C"])
def test_reingest_form(who, key):
    response = who.get(f"/messages/{who.seeded.ids[key]}/reingest")
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    if key not in ROWS[who.name]:
        assert response.status_code == 404
    elif key in REINGEST[who.name]:
        assert response.status_code == 200
        assert f"PAYLOADMARK{key}" in text
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("key", ["A", "C"])
def test_reingest_post(who, key, db):
    from models import AuditLog

    token = csrf_token(who.client)
    message_id = who.seeded.ids[key]
    response = who.client.post(
        f"/messages/{message_id}/reingest",
        data={"csrf_token": token, "payload": f'{{"note": "PAYLOADMARK{key}"}}'},
    )
    text = response.get_data(as_text=True)
    assert who.leaked(text) == []
    audit = db.session.query(AuditLog).filter(AuditLog.message_ids.contains([message_id])).all()
    if key not in ROWS[who.name]:
        assert response.status_code == 404
        assert audit == []
    elif key in REINGEST[who.name]:
        # Permitted: it reaches the broker, where the seeded exchange does not exist.
        assert response.status_code == 502
        assert "does not exist" in text
        assert [(a.action, a.outcome) for a in audit] == [("reingest", "error")]
    else:
        assert response.status_code == 403
        assert [(a.action, a.outcome) for a in audit] == [("reingest", "denied")]


def test_bulk_acknowledge_preview(who):
    response = who.get("/actions/acknowledge", query_string={"status": "errored"})
    if ACK[who.name]:
        assert response.status_code == 200
        assert f'data-count="{len(ACK[who.name])}"' in response.get_data(as_text=True)
    else:
        assert response.status_code == 403


def test_bulk_acknowledge(who, db):
    from models import Message

    token = csrf_token(who.client)
    response = who.client.post(
        "/actions/acknowledge", data={"csrf_token": token, "status": "errored"}
    )
    db.session.expire_all()
    acked = {
        key
        for key, message_id in who.seeded.ids.items()
        if db.session.query(Message).filter_by(id=message_id).one().acknowledged_at
    }
    assert acked == ACK[who.name]
    assert response.status_code == (200 if ACK[who.name] else 403)


def test_bulk_reingest_preview(who):
    response = who.get("/actions/reingest", query_string={"status": "errored"})
    if REINGEST[who.name]:
        assert response.status_code == 200
        assert f'data-count="{len(REINGEST[who.name])}"' in response.get_data(as_text=True)
    else:
        assert response.status_code == 403


# ---- actions through the JSON API (session cookie + CSRF header; tokens: tests/api) ----------


@pytest.mark.parametrize("key", ["A", "B", "C"])
def test_api_acknowledge(who, key, db):
    from models import AuditLog, Message

    headers = {"X-CSRFToken": csrf_token(who.client)}
    message_id = who.seeded.ids[key]
    response = who.client.post(f"/api/v1/messages/{message_id}/acknowledge", headers=headers)
    db.session.expire_all()
    message = db.session.query(Message).filter_by(id=message_id).one()
    audit = db.session.query(AuditLog).filter(AuditLog.message_ids.contains([message_id])).all()
    assert response.is_json
    if key not in ROWS[who.name]:
        assert response.status_code == 404
        assert message.acknowledged_at is None
    elif key in ACK[who.name]:
        assert response.status_code == 200
        assert response.get_json()["acknowledged"] is True
        assert [(a.action, a.outcome) for a in audit] == [("acknowledge", "ok")]
    else:
        assert response.status_code == 403
        assert message.acknowledged_at is None
        assert [(a.action, a.outcome) for a in audit] == [("acknowledge", "denied")]


@pytest.mark.parametrize("key", ["A", "C"])
def test_api_reingest(who, key, db):
    from models import AuditLog

    headers = {"X-CSRFToken": csrf_token(who.client)}
    message_id = who.seeded.ids[key]
    response = who.client.post(
        f"/api/v1/messages/{message_id}/reingest",
        headers=headers,
        json={"payload": f'{{"note": "PAYLOADMARK{key}"}}'},
    )
    assert who.leaked(response.get_data(as_text=True)) == []
    audit = db.session.query(AuditLog).filter(AuditLog.message_ids.contains([message_id])).all()
    if key not in ROWS[who.name]:
        assert response.status_code == 404
        assert audit == []
    elif key in REINGEST[who.name]:
        assert response.status_code == 502  # the seeded exchange exists on no broker
        assert [(a.action, a.outcome) for a in audit] == [("reingest", "error")]
    else:
        assert response.status_code == 403
        assert [(a.action, a.outcome) for a in audit] == [("reingest", "denied")]


def test_api_bulk_acknowledge(who, db):
    from models import Message

    preview = who.get("/api/v1/actions/acknowledge", query_string={"status": "errored"})
    if not ACK[who.name]:
        assert preview.status_code == 403
    else:
        assert preview.status_code == 200
        assert preview.get_json()["count"] == len(ACK[who.name])
    through_id = max(who.seeded.ids.values())
    response = who.client.post(
        "/api/v1/actions/acknowledge",
        headers={"X-CSRFToken": csrf_token(who.client)},
        json={"status": "errored", "through_id": through_id},
    )
    db.session.expire_all()
    acked = {
        key
        for key, message_id in who.seeded.ids.items()
        if db.session.query(Message).filter_by(id=message_id).one().acknowledged_at
    }
    assert acked == ACK[who.name]
    assert response.status_code == (200 if ACK[who.name] else 403)


def test_api_bulk_reingest_preview(who):
    response = who.get("/api/v1/actions/reingest", query_string={"status": "errored"})
    if REINGEST[who.name]:
        assert response.status_code == 200
        assert response.get_json()["count"] == len(REINGEST[who.name])
    else:
        assert response.status_code == 403


def test_api_tokens_page(who):
    response = who.get("/account/tokens")
    if who.name == "anonymous":
        assert response.status_code == 401
    else:
        assert response.status_code == 200
        assert ("Create token" in response.get_data(as_text=True)) == (who.name != "disabled")


# ---- admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/groups/", "/admin/audit/", "/admin/quarantine/", "/system"]
)
def test_admin(who, path):
    response = who.get(path)
    if who.name in ("admin", "disabled"):
        assert response.status_code == 200
    elif who.name == "anonymous":
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]
    else:
        assert response.status_code == 403
