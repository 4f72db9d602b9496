"""`/ws/messages` on a real gunicorn with two workers: fan-out, filters, throttling."""

from __future__ import annotations

import json
import time

import psycopg2
import pytest
from simple_websocket import Client, ConnectionClosed

from tests.conftest import admin_dsn
from tests.factories import report_body as body

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
    data = json.loads(first_message(ws) or "{}")
    assert data["type"] == "error" and "status" in data["message"]
    time.sleep(0.5)
    assert not ws.connected, "the server closes a socket it cannot serve"


def first_message(ws: Client, timeout: float = 10) -> str | None:
    """The socket's first message, also when it came in the packet of the handshake response
    together with the close: simple_websocket's client leaves those events in its protocol
    buffer and reports the socket closed (a flake on a busy machine, where they coalesce)."""
    try:
        return ws.receive(timeout=timeout)
    except ConnectionClosed:
        from wsproto.events import TextMessage

        for event in ws.ws.events():
            if isinstance(event, TextMessage):
                return event.data
        return None


def close_code(ws: Client) -> int:
    """The close code the server sent. simple_websocket's client parses only the first event of
    the packet that carries the handshake response: a close frame in the same packet stays in
    its protocol buffer (the client then reports 1005, "no status"), so look there too."""
    if ws.close_reason == 1005:
        from wsproto.events import CloseConnection

        for event in ws.ws.events():
            if isinstance(event, CloseConnection):
                return event.code
    return int(ws.close_reason)


def _closed_with(ws: Client, seconds: float = 10) -> int | None:
    """The close code the server sent, waiting up to `seconds` (None while it stays open)."""
    deadline = time.monotonic() + seconds
    while ws.connected and time.monotonic() < deadline:
        try:
            ws.receive(timeout=0.2)
        except ConnectionClosed:
            break
    return None if ws.connected else close_code(ws)


def test_pages_answer_however_many_sockets_are_open(live_server):
    """One web process with 16 threads: 40 sockets from many clients never take every thread;
    the ones over the limit are closed with 1013, and the list page still answers at once."""
    import requests

    url = live_server(WS_MAX_PER_CLIENT="100")
    sockets, refused = [], []
    try:
        for _ in range(40):
            ws = Client.connect(url.replace("http://", "ws://") + "/ws/messages")
            try:
                first = ws.receive(timeout=30)
            except ConnectionClosed:
                refused.append(close_code(ws))
                continue
            assert json.loads(first)["type"] == "hello", first
            sockets.append(ws)
        assert len(sockets) == 12, "three quarters of 16 threads serve sockets"
        assert refused == [1013] * 28
        started = time.monotonic()
        page = requests.get(url + "/", timeout=10)
        api = requests.get(url + "/api/v1/messages", timeout=10)
        assert page.status_code == 200 and api.status_code == 200
        assert time.monotonic() - started < 5, "pages are not starved by open sockets"
    finally:
        for ws in sockets:
            ws.close()


def test_one_client_gets_at_most_its_share_of_sockets(live_server):
    url = live_server(WS_MAX_PER_CLIENT="3")
    sockets = [connect(url) for _ in range(3)]
    try:
        extra = Client.connect(url.replace("http://", "ws://") + "/ws/messages")
        assert _closed_with(extra) == 1013
        # A slot frees when a socket closes.
        sockets.pop().close()
        time.sleep(1.5)
        sockets.append(connect(url))
    finally:
        for ws in sockets:
            ws.close()
