"""The live process (`python -m webapp.processes live`): gunicorn's gevent worker serving the
sockets, where a socket is a greenlet, not a thread of the page tier."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import uuid
from pathlib import Path

import pytest
from simple_websocket import Client
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request, TextMessage

from bench.ingest import _children
from bench.live import priority_of
from tests.factories import report_body as body
from tests.live.test_socket import _closed_with, frames, ids_in, listeners
from tests.processes import Process, process_environ, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def live_process(test_db_name, tmp_path):
    started: list[Process] = []

    def start(**env_extra: str) -> str:
        env = process_environ(
            test_db_name, SECRET_KEY="test-secret-" + uuid.uuid4().hex, **env_extra
        )
        env.setdefault("RUN_DIR", str(tmp_path / "run"))
        proc = serve("live", env, tmp_path / "live-{port}.log")
        started.append(proc)
        return f"ws://127.0.0.1:{proc.port}"

    yield start
    for proc in started:
        proc.stop()


class WholeClient(Client):
    """simple_websocket's client parses only the first event of the packet that carries the
    handshake response: a hello frame in the same packet would wait for the next one (the 25-s
    ping). Take the rest of that packet too."""

    def handshake(self):
        super().handshake()
        self._handle_events()


def open_socket(url: str, query: str = "", **kwargs) -> Client:
    return WholeClient.connect(url + "/ws/messages" + query, **kwargs)


def test_one_process_serves_many_sockets_and_renders_each_push_once(
    live_process, write_reports, test_db_name
):
    """60 sockets on one process (a 16-thread web process serves 12), two filters: every socket
    gets the push, one LISTEN connection, and all sockets with the same filters get the same
    frame (rendered once: same `sent_at`). Over LIVE_MAX_SOCKETS: 1013."""
    url = live_process(LIVE_MAX_SOCKETS="60", WS_MAX_PER_CLIENT="1000")
    sockets: list[tuple[str, Client]] = []
    try:
        for n in range(60):
            query = "" if n % 2 else "?type=user-sync"
            ws = open_socket(url, query)
            hello = json.loads(ws.receive(timeout=30))
            assert hello["type"] == "hello", hello
            sockets.append((query, ws))
        # A plain client: the close frame may share the handshake's packet (see close_code).
        assert _closed_with(Client.connect(url + "/ws/messages")) == 1013
        assert listeners(test_db_name) == 1
        ids = write_reports(body(message_type="user-sync"), body(message_type="dataset-ingestion"))
        sent_at: dict[str, set[float]] = {"": set(), "?type=user-sync": set()}
        for query, ws in sockets:
            want = set(ids) if query == "" else {ids[0]}
            got = frames(ws, 10, until=lambda f, want=want: ids_in(f) >= want)
            assert ids_in(got) == want, query
            sent_at[query].update(f["sent_at"] for f in got if f["type"] == "messages")
        assert len(sent_at[""]) == 1 and len(sent_at["?type=user-sync"]) == 1, sent_at
    finally:
        for _, ws in sockets:
            ws.close()


def raw_handshake(port: int, **headers: str) -> tuple[int, dict[str, str]]:
    """Status and headers of a raw WebSocket handshake on /ws/messages (101 = upgraded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    base = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    try:
        conn.request("GET", "/ws/messages", headers={**base, **headers})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_the_live_process_checks_the_origin_and_compresses_without_context(live_process):
    port = int(live_process().rsplit(":", 1)[1])
    for hostile in ("http://evil.example", f"http://evil.example:{port}", "null"):
        assert raw_handshake(port, Origin=hostile)[0] == 403, hostile
    status, headers = raw_handshake(
        port,
        Origin=f"http://127.0.0.1:{port}",
        **{"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"},
    )
    assert status == 101
    # A browser offers permessage-deflate: accepted, with every message compressed on its own,
    # so that one compressed frame serves every socket of a group (tests/live/test_deflate.py).
    extensions = headers["sec-websocket-extensions"]
    assert extensions.startswith("permessage-deflate"), extensions
    assert "server_no_context_takeover" in extensions, extensions


def test_a_client_that_reads_slowly_gets_whole_frames(live_process, write_reports):
    """Frames of ~0.4 MB to a client that does not read for a while (its receive window is
    small, so they wait in the server's send buffer): each goes out whole. simple-websocket
    wrote with one `sock.send`, which on gevent's sockets may write only part of the data and
    drop the rest: the stream became garbage and the browser closed the socket."""
    port = int(live_process().rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws/messages")))
    texts: list[str] = []

    def read(until) -> None:
        parts: list[str] = []
        deadline = time.monotonic() + 30
        while not until():
            assert time.monotonic() < deadline, f"{len(texts)} frames, then nothing readable"
            data = sock.recv(65536)
            assert data, "the server closed the socket"
            ws.receive_data(data)  # a torn frame: RemoteProtocolError, or garbage below
            for event in ws.events():
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        texts.append("".join(parts))
                        parts.clear()

    try:
        read(lambda: texts)
        assert json.loads(texts.pop(0))["type"] == "hello"
        # Long identifiers: ~3.7 KB a row, 100 rows a frame; 12 frames, more than the server's
        # send buffer can hold (at most 4 MB: net.ipv4.tcp_wmem).
        long = {f"key{n}": f"{n}" + "v" * 600 for n in range(8)}
        written: list[int] = []
        for _ in range(12):
            written += write_reports(*[body(object_identifiers=long) for _ in range(100)])
            time.sleep(0.8)  # one push each, sent while the client reads nothing
        time.sleep(1)
        shown_or_counted = 0

        def all_arrived() -> bool:
            nonlocal shown_or_counted
            while texts:
                frame = json.loads(texts.pop(0))  # a torn frame is not JSON
                sizes.append(len(json.dumps(frame)))
                shown_or_counted += frame.get("total", 0)
            return shown_or_counted >= len(written)

        sizes: list[int] = []
        read(all_arrived)
        assert shown_or_counted == len(written)
        assert max(sizes) > 300_000, "frames of a few hundred KB"
    finally:
        sock.close()


def test_the_live_process_yields_the_cpu_to_the_page_tier(test_db_name, tmp_path):
    """Started as users start it (its own session, as `make up` and compose do), the live
    process and its gevent worker run LIVE_NICE below the page tier, and so does their session
    where the kernel shares the CPU per session first: a push's burst of writes to a thousand
    sockets then waits for a page request, not the other way round (bench/README.md)."""
    env = process_environ(
        test_db_name,
        SECRET_KEY="test-secret-" + uuid.uuid4().hex,
        RUN_DIR=str(tmp_path / "run"),
        LIVE_NICE="7",
    )
    proc = serve("live", env, tmp_path / "live-{port}.log")
    try:
        # It serves (so its worker is up): a socket gets its hello.
        ws = open_socket(f"ws://127.0.0.1:{proc.port}")
        try:
            assert json.loads(ws.receive(timeout=10))["type"] == "hello"
        finally:
            ws.close()
        expected = min(19, os.nice(0) + 7)
        master = proc.proc.pid
        tree = [master, *_children(master)]
        assert len(tree) == 2, tree  # the master and its one worker
        for pid in tree:
            assert priority_of(pid).startswith(f"nice {expected}, "), priority_of(pid)
        if Path(f"/proc/{master}/autogroup").exists():
            assert priority_of(master).endswith(f" nice {expected}"), priority_of(master)
    finally:
        proc.stop()
