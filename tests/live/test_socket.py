"""`/ws/messages` on a real gunicorn with two workers: fan-out, filters, throttling."""

from __future__ import annotations

import json
import time

import psycopg2
import pytest
from simple_websocket import Client

from tests.conftest import admin_dsn
from tests.messages.support import body

pytestmark = pytest.mark.slow


def frames(ws, seconds: float, until=None) -> list[dict]:
    """Message frames received within `seconds` (stops early once `until(frames)` holds)."""
    out: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=max(0.05, min(0.3, deadline - time.monotonic())))
        if raw is None:
            continue
        data = json.loads(raw)
        if data["type"] == "ping":
            continue
        out.append({**data, "at": time.monotonic()})
        if until is not None and until(out):
            break
    return out


def ids_in(received: list[dict]) -> set[int]:
    return {i for f in received if f["type"] == "messages" for i in f["ids"]}


def connect(url: str, query: str = "") -> Client:
    ws = Client.connect(url.replace("http://", "ws://") + "/ws/messages" + query)
    # Generous: the CI machine has two cores shared with the rest of the suite.
    hello = json.loads(ws.receive(timeout=30) or '{"type": "timeout"}')
    assert hello["type"] == "hello", hello
    return ws


def listeners(db_name: str) -> int:
    conn = psycopg2.connect(admin_dsn(db_name))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'pacer-dashboard-live' AND datname = %s",
                (db_name,),
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_every_web_process_pushes_matching_messages_to_its_sockets(
    live_server, write_reports, test_db_name
):
    # Two servers (one process each, deterministic) plus a two-worker one: every process
    # LISTENs on its own, so a commit reaches sockets wherever they are connected.
    urls = [live_server(), live_server(), live_server(workers=2)]
    sockets = [connect(url) for url in urls for _ in range(2)]
    try:
        assert listeners(test_db_name) >= 3, "each web process listens once"
        filtered = connect(urls[0], "?type=user-sync&status=errored")
        dataset_ids = write_reports(body(), body(message_type="dataset-ingestion"))
        for ws in sockets:
            got = frames(ws, 3, until=lambda f: ids_in(f) >= set(dataset_ids))
            assert ids_in(got) == set(dataset_ids)
            html = "".join(f["html"] for f in got if f["type"] == "messages")
            assert html.count('<tr class="msg') == 2 and "mx_01" in html
        assert ids_in(frames(filtered, 1)) == set()
        wanted, _ = write_reports(
            body(message_type="user-sync", errored=True, error_message={"cb": "E: x"}),
            body(message_type="user-sync"),
        )
        assert ids_in(frames(filtered, 3, until=ids_in)) == {wanted}
    finally:
        for ws in sockets:
            ws.close()


def test_pushes_are_batched_and_throttled(live_server, write_reports):
    url = live_server()
    ws = connect(url)
    try:
        written: set[int] = set()
        for _ in range(12):
            written.update(write_reports(body()))
            time.sleep(0.05)
        got = frames(ws, 4, until=lambda f: ids_in(f) >= written)
        pushes = [f for f in got if f["type"] == "messages"]
        assert ids_in(pushes) == written
        assert len(pushes) < len(written), "batches written close together are pushed together"
        sent = [p["sent_at"] for p in pushes]
        gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
        assert all(g >= 0.49 for g in gaps), gaps  # at most two pushes per second
    finally:
        ws.close()


def test_a_bad_filter_is_reported_on_the_socket(live_server):
    url = live_server()
    ws = Client.connect(url.replace("http://", "ws://") + "/ws/messages?status=bogus")
    data = json.loads(ws.receive(timeout=10))
    assert data["type"] == "error" and "status" in data["message"]
    time.sleep(0.5)
    assert not ws.connected, "the server closes a socket it cannot serve"
