"""permessage-deflate on `/ws/messages` (webapp/live/deflate.py): accepted when offered, always
with `server_no_context_takeover`, each group frame compressed once and the same bytes written
to every socket of the group. Real servers: the gevent live process, and (for the keep-alive
ping, whose interval a test must shorten) a threaded server in this process."""

from __future__ import annotations

import json
import socket
import time
import zlib

import pytest
import simple_websocket.ws
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from tests.factories import report_body as body
from tests.live.test_live_process import live_process  # noqa: F401 - fixture
from tests.processes import serve_in_process
from webapp.live import deflate
from webapp.live.fanout import deflated_frame

pytestmark = pytest.mark.slow

#: What Chromium offers.
BROWSER_OFFER = "client_max_window_bits"


class Offer(PerMessageDeflate):
    """wsproto's client extension, offering exactly `params` (wsproto's own offer always names
    both window sizes); it inflates with what the server answers."""

    def __init__(self, params: str):
        super().__init__()
        self._params = params

    def offer(self) -> str:
        return self._params


class RawClient:
    """A WebSocket client on a plain socket that keeps each server frame as it came on the wire
    (first byte, payload, raw bytes) besides decoding the stream with wsproto, as a browser
    would (wsproto inflates and checks RSV1 against what was negotiated)."""

    def __init__(self, port: int, query: str = "", offer: str | None = BROWSER_OFFER):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.extensions = [] if offer is None else [Offer(offer)]
        request = Request(
            host=f"127.0.0.1:{port}", target="/ws/messages" + query, extensions=self.extensions
        )
        self.sock.sendall(self.ws.send(request))
        self.response_headers: dict[str, str] = {}
        self.frames: list[tuple[int, bytes, bytes]] = []  # data frames: first byte, payload, raw
        self.texts: list[str] = []  # the same messages, decoded by wsproto
        self._head = self._buffer = b""
        self._upgraded = False
        self._parts: list[str] = []
        self.accepted = False
        self.close_code: int | None = None
        self.read(lambda: self.accepted)

    def read(self, until, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not until():
            assert time.monotonic() < deadline, f"timed out; got {self.texts}"
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = self.sock.recv(262144)
            assert data, "the server closed the socket"
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
            elif isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self.texts.append("".join(self._parts))
                    self._parts.clear()
        if not self._upgraded:  # the frames start after the handshake response
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            self._upgraded = True
            head, data = self._head.split(b"\r\n\r\n", 1)
            for line in head.decode().split("\r\n")[1:]:
                name, value = line.split(":", 1)
                self.response_headers[name.strip().lower()] = value.strip()
        self._buffer += data
        while len(self._buffer) >= 2:
            first, n = self._buffer[0], self._buffer[1] & 0x7F
            assert not self._buffer[1] & 0x80, "a server frame is never masked"
            start = {126: 4, 127: 10}.get(n, 2)
            if len(self._buffer) < start:
                return
            if n >= 126:
                n = int.from_bytes(self._buffer[2:start], "big")
            if len(self._buffer) < start + n:
                return
            raw, self._buffer = self._buffer[: start + n], self._buffer[start + n :]
            if first & 0x0F == 0x1:  # text (our messages are never fragmented)
                self.frames.append((first, raw[start:], raw))

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def messages(self) -> list[dict]:
        return [json.loads(t) for t in self.texts]

    def ids(self) -> set[int]:
        return {i for m in self.messages() if m["type"] == "messages" for i in m["ids"]}

    def close(self) -> None:
        self.sock.close()


def inflate(payload: bytes, window_bits: int = 15) -> str:
    """RFC 7692 7.2.2: append 00 00 ff ff, inflate with a fresh window."""
    return zlib.decompressobj(-window_bits).decompress(payload + b"\x00\x00\xff\xff").decode()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_deflate_is_negotiated_and_each_group_frame_compressed_once_for_all(
    live_process,  # noqa: F811
    write_reports,
):
    port = port_of(live_process())
    one, two = RawClient(port), RawClient(port)
    plain = RawClient(port, offer=None)
    try:
        for client in (one, two):
            extensions = client.response_headers["sec-websocket-extensions"]
            assert extensions.startswith("permessage-deflate"), extensions
            assert "server_no_context_takeover" in extensions, extensions
        assert "sec-websocket-extensions" not in plain.response_headers
        for client in (one, two, plain):
            client.read(lambda c=client: c.texts)
            assert client.messages()[0] == {"type": "hello"}
        ids = set(write_reports(*[body() for _ in range(20)]))
        for client in (one, two, plain):
            client.read(lambda c=client: c.ids() >= ids)
        pushed = [f for f in one.frames if b'"messages"' in inflate_or_plain(f)]
        assert pushed, one.texts
        for first, payload, _ in pushed:
            assert first == 0xC1, hex(first)  # FIN + RSV1 + text
            assert len(payload) < len(inflate(payload)) / 3
        # The same push: byte for byte the same compressed frames on both sockets...
        assert [raw for *_, raw in one.frames] == [raw for *_, raw in two.frames]
        # ...and the same JSON as the plain socket's, which gets plain frames.
        assert one.texts == two.texts == plain.texts
        assert [inflate_or_plain(f) for f in one.frames] == [p for _, p, _ in plain.frames]
        assert {first for first, _, _ in plain.frames} == {0x81}
    finally:
        for client in (one, two, plain):
            client.close()


def inflate_or_plain(frame: tuple[int, bytes, bytes]) -> bytes:
    first, payload, _ = frame
    return inflate(payload).encode() if first & 0x40 else payload


def test_a_smaller_server_window_is_honoured(live_process, write_reports):  # noqa: F811
    """A client that offers `server_max_window_bits=10` inflates with a 1 KB window: the frames
    must not refer further back (zlib fails "distance too far back" otherwise)."""
    port = port_of(live_process())
    small = RawClient(port, offer="server_max_window_bits=10; client_max_window_bits")
    try:
        assert "server_max_window_bits=10" in small.response_headers["sec-websocket-extensions"]
        small.read(lambda: small.texts)
        ids = set(write_reports(*[body() for _ in range(100)]))
        small.read(lambda: small.ids() >= ids)
        big = max((f for f in small.frames if f[0] & 0x40), key=lambda f: len(f[1]))
        text = inflate(big[1], window_bits=10)
        assert json.loads(text)["type"] == "messages"
        assert len(text) > 32_768, "a frame longer than the largest window"
        # What the check is worth: the same text deflated with the default window does not
        # inflate with 10 bits.
        wide = deflated_frame(text.encode(), 15)
        assert wide[1] == 126, "the frame deflates to less than 64 KB"
        with pytest.raises(zlib.error):
            inflate(wide[4:], window_bits=10)  # 126 + 16-bit length: a 4-byte header
    finally:
        small.close()


def test_a_client_message_that_inflates_beyond_the_cap_closes_the_socket(
    live_process,  # noqa: F811
):
    """A client has nothing to send; 10 MB of text deflates to ~10 KB, which must not inflate
    into the server's buffer: the socket closes with 1009 (message too big) as it arrives. (A
    small message closes it too, with 1008, at the handler's next turn:
    test_a_client_message_closes_the_socket.)"""
    port = port_of(live_process())
    client = RawClient(port)
    try:
        client.read(lambda: client.texts)
        client.send("x" * 10_000_000)
        client.read(lambda: client.close_code is not None, seconds=10)
        assert client.close_code == 1009, client.close_code
    finally:
        client.close()


@pytest.mark.parametrize("deflated", [True, False])
def test_a_client_message_closes_the_socket(live_process, deflated):  # noqa: F811
    """The server only sends on /ws/messages: what a client sends would pile up unread in
    simple-websocket's buffer (a few KB at a time, without end). The socket closes with 1008."""
    port = port_of(live_process())
    client = RawClient(port, offer=BROWSER_OFFER if deflated else None)
    try:
        client.read(lambda: client.texts)
        started = time.monotonic()
        client.send("hello server " * 100)
        client.read(lambda: client.close_code is not None, seconds=5)
        assert client.close_code == 1008, client.close_code
        assert time.monotonic() - started < 3
    finally:
        client.close()


def test_errors_still_arrive_and_decode(live_process):  # noqa: F811
    port = port_of(live_process())
    client = RawClient(port, query="?status=bogus")
    try:
        client.read(lambda: client.texts)
        error = client.messages()[0]
        assert error["type"] == "error" and "status" in error["message"], error
    finally:
        client.close()


def test_hello_frames_and_keepalive_pings_interleave_on_a_deflate_socket(
    app, write_reports, monkeypatch
):
    """hello and ping go through simple-websocket (wsproto compresses them itself), the pushes
    are our precompressed frames: the client inflates all of them, in any order."""
    from webapp.live import routes

    monkeypatch.setattr(routes, "KEEPALIVE_SECONDS", 0.5)
    with serve_in_process(app) as server:
        client = RawClient(server.server_port)
        try:
            client.read(lambda: client.texts)
            ids = set(write_reports(*[body() for _ in range(10)]))
            client.read(lambda: client.ids() >= ids)
            client.read(lambda: client.messages()[-1]["type"] == "ping", seconds=10)
            later = set(write_reports(*[body() for _ in range(10)]))
            client.read(lambda: client.ids() >= later)
            client.read(lambda: client.messages()[-1]["type"] == "ping", seconds=10)
            types = [m["type"] for m in client.messages()]
            assert types[0] == "hello" and types.count("ping") >= 2, types
            assert any(first == 0xC1 for first, *_ in client.frames)  # pushes compressed
        finally:
            client.close()


def test_simple_websocket_builds_the_extension_through_the_patched_global():
    """The patch deflate.py relies on: simple-websocket 1.1.0 accepts permessage-deflate with
    `PerMessageDeflate()` looked up in its module at handshake time. If this fails after an
    upgrade of simple-websocket, check webapp/live/deflate.py against its `_handle_events`."""
    import inspect

    deflate.install()
    assert simple_websocket.ws.PerMessageDeflate is deflate.SharedFrameDeflate
    source = inspect.getsource(simple_websocket.ws.Base._handle_events)
    assert "extensions=[PerMessageDeflate()]" in source
    ext = deflate.SharedFrameDeflate()
    accepted = ext.accept("permessage-deflate; client_max_window_bits")
    assert ext.enabled() and "server_no_context_takeover" in accepted
    assert deflate.negotiated_window({deflate.ENVIRON_KEY: ext}) == 15
    assert deflate.negotiated_window({}) is None
    assert deflate.negotiated_window({deflate.ENVIRON_KEY: deflate.SharedFrameDeflate()}) is None


@pytest.mark.browser
def test_chromium_negotiates_deflate_and_reads_the_shared_frames(
    live_process,  # noqa: F811
    page,
    write_reports,
):
    """Chromium offers `permessage-deflate; client_max_window_bits`: it gets the extension with
    server_no_context_takeover and inflates our precompressed frames (and wsproto's hello)."""
    port = port_of(live_process())
    page.goto(f"http://127.0.0.1:{port}/")
    extensions = page.evaluate(
        """async (url) => {
            const ws = new WebSocket(url);
            window.deflateTest = [];
            ws.onmessage = (e) => window.deflateTest.push(JSON.parse(e.data));
            await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
            window.deflateSocket = ws;
            return ws.extensions;
        }""",
        f"ws://127.0.0.1:{port}/ws/messages",
    )
    assert extensions.startswith("permessage-deflate"), extensions
    assert "server_no_context_takeover" in extensions, extensions
    ids = write_reports(*[body() for _ in range(50)])
    page.wait_for_function(
        """(want) => {
            const got = new Set(window.deflateTest.flatMap((m) => m.ids || []));
            return want.every((id) => got.has(id));
        }""",
        arg=ids,
        timeout=30_000,
    )
    received = page.evaluate("window.deflateTest")
    assert received[0] == {"type": "hello"}
    assert page.evaluate("window.deflateSocket.readyState") == 1  # still open: nothing invalid
    assert page.console_errors == []


def test_another_class_in_simple_websocket_is_left_alone(monkeypatch):
    """A simple-websocket whose global is not wsproto's class: no patch, plain frames, a
    warning (the app still starts)."""

    class Theirs(PerMessageDeflate):
        pass

    warnings: list[str] = []
    monkeypatch.setattr(deflate.logger, "warning", lambda msg, *a: warnings.append(msg % a))
    monkeypatch.setattr(simple_websocket.ws, "PerMessageDeflate", Theirs)
    deflate.install()
    assert simple_websocket.ws.PerMessageDeflate is Theirs
    assert len(warnings) == 1 and "frames go out uncompressed" in warnings[0]
