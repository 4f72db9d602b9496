"""The WebSocket row of the permission matrix: pushes carry only what the user's scope allows.

The app is served by a threaded werkzeug server in this process (flask-sock works on it) so the
test can toggle DISABLED_AUTH and sign session cookies like the other matrix rows do.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.auth.support import ADMIN_GROUP, login
from tests.auth.test_permission_matrix import ALL, DETAILS, PERSONAS, ROWS
from tests.processes import serve_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(app):
    with serve_in_process(app) as server:
        yield f"127.0.0.1:{server.server_port}"


@pytest.mark.parametrize("persona", PERSONAS)
def test_websocket_pushes_respect_scope(
    request, persona, app, db, client, server_url, make_group, make_user
):
    from simple_websocket import Client

    if not any(r.rule == "/ws/messages" for r in app.url_map.iter_rules()):
        pytest.xfail("route /ws/messages does not exist yet (another area's issue)")
    if persona != "disabled":
        request.getfixturevalue("auth_enabled")
    bl06 = make_group("bl06-team", identifier_rules={"instrument": ["BL06"]}, can_acknowledge=True)
    office = make_group("user-office", message_types=["user-sync"], can_reingest=True)
    memberships = {
        "groupless": [],
        "instrument": [bl06],
        "type": [office],
        "two_groups": [bl06, office],
        "admin": [make_group(ADMIN_GROUP)],
    }
    headers = {}
    if persona in memberships:
        login(client, make_user(persona, memberships[persona]))
        headers["Cookie"] = f"session={client.get_cookie('session').value}"

    ws = Client.connect(f"ws://{server_url}/ws/messages?acknowledged=shown", headers=headers)
    try:
        # Generous: the first socket of the process starts the LISTEN thread (up to 5 s), and the
        # single-process test server shares two cores with the rest of the suite.
        frame = ws.receive(timeout=30)
        assert frame is not None, "no hello from /ws/messages within 30 s"
        hello = json.loads(frame)
        assert hello["type"] == "hello", hello
        seeded = request.getfixturevalue("seeded")  # ingested now: NOTIFY → push
        ids: set[int] = set()
        html = ""
        deadline = time.monotonic() + 6
        expected = {seeded.ids[k] for k in ROWS[persona]}
        while time.monotonic() < deadline and ids != expected:
            frame = ws.receive(timeout=0.5)
            if frame is None:
                continue
            data = json.loads(frame)
            if data["type"] == "messages":
                ids.update(data["ids"])
                html += data["html"]
    finally:
        ws.close()
    assert ids == expected
    hidden = ALL - DETAILS[persona]
    assert [m for k in sorted(hidden) for m in seeded.markers[k] if m in html] == []
