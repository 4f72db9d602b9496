"""The fan-out renders each push once per distinct (filters, scope), for every socket."""

from __future__ import annotations

import json
import os
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from wsproto.extensions import PerMessageDeflate

from tests.factories import report_body as body
from webapp.live.fanout import (
    DEFLATE_MIN_BYTES,
    GAP_FRAME,
    SESSION_ENDED,
    Fanout,
    Frame,
    Viewer,
    text_frame,
)
from webapp.live.hub import Batch, Hub
from webapp.messages.filters import MessageFilter


def batch_of(ids: list[int]) -> Batch:
    now = datetime.now(UTC)
    return Batch(min(ids), max(ids), now - timedelta(days=1), now + timedelta(days=1))


def test_one_render_per_distinct_filters_and_scope(app, write_reports, count_queries):
    everything = MessageFilter()
    user_sync = MessageFilter(types=("user-sync",))
    errored = MessageFilter(status="errored")
    viewers = (
        [Viewer(everything, None, None) for _ in range(30)]
        + [Viewer(user_sync, None, None) for _ in range(20)]
        + [Viewer(errored, None, None) for _ in range(10)]
    )
    fanout = Fanout(app, Hub("unused"))
    for v in viewers:
        fanout._viewers.add(v)  # no pusher thread: push() is called directly
    ids = write_reports(body(message_type="user-sync"), body(message_type="dataset-ingestion"))
    with count_queries() as statements:
        fanout.push([batch_of(ids)])
    # Three groups: one query each (the errored group matches nothing), two renders, not 60.
    assert len(statements) == 3, statements
    assert fanout.stats.renders == 2
    # The user-sync row is rendered once, for both groups that show it.
    assert fanout.stats.rows == 2
    assert fanout.stats.frames == 50
    firsts = [v.take(0) for v in viewers]
    assert all(len(f) == 1 for f in firsts[:50]) and all(f == [] for f in firsts[50:])
    # Every socket of a group gets the very same frame, encoded to wire bytes once.
    assert len({id(f[0]) for f in firsts[:30]}) == 1
    assert len({id(f[0]) for f in firsts[30:50]}) == 1
    frame = firsts[0][0]
    assert isinstance(frame, Frame) and frame.wire == wsproto_text_frame(frame.text)
    assert '"ids": [' in frame.text and str(ids[0]) in frame.text


def test_a_viewer_whose_session_ended_is_told_and_gets_no_frame(app, write_reports):
    fanout = Fanout(app, Hub("unused"))
    gone = Viewer(MessageFilter(), 987654, "no-such-token")
    anonymous = Viewer(MessageFilter(), None, None)
    fanout._viewers.update({gone, anonymous})
    fanout.push([batch_of(write_reports(body()))])
    assert gone.take(0) == [SESSION_ENDED]
    assert len(anonymous.take(0)) == 1


def test_a_client_that_does_not_read_is_told_it_missed_frames():
    viewer = Viewer(MessageFilter(), None, None)
    for n in range(100):
        viewer.put(Frame(f'{{"n": {n}}}'))
    items = viewer.take(0)
    assert len(items) <= 33 and items[0].text == '{"type": "gap"}'
    assert items[-1].text == '{"n": 99}'


def wsproto_text_frame(text: str) -> bytes:
    """What simple-websocket (wsproto, server side, no extension) sends for `text`."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage

    server, client = WSConnection(ConnectionType.SERVER), WSConnection(ConnectionType.CLIENT)
    server.receive_data(client.send(Request(host="localhost", target="/ws/messages")))
    list(server.events())
    server.send(AcceptConnection())
    return server.send(TextMessage(data=text))


def test_a_frame_is_encoded_once_to_the_bytes_wsproto_would_send():
    # Every length form of RFC 6455 (7-bit, 16-bit, 64-bit), multi-byte UTF-8 included.
    for size in (0, 1, 125, 126, 127, 65535, 65536, 200_000):
        text = ("é" * size)[: size - size // 2] + "x" * (size // 2)
        assert text_frame(text) == wsproto_text_frame(text), size
        frame = Frame(text)
        assert frame.wire == wsproto_text_frame(text) and not frame.closes


def wsproto_deflate_pair(offer: str = "client_max_window_bits"):
    """A wsproto server with the extension /ws/ negotiates (deflate.SharedFrameDeflate) and a
    wsproto client that offered `offer`, after the handshake."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    from webapp.live.deflate import SharedFrameDeflate

    class Offer(PerMessageDeflate):
        def offer(self) -> str:
            return offer

    server, client = WSConnection(ConnectionType.SERVER), WSConnection(ConnectionType.CLIENT)
    ext = SharedFrameDeflate()
    server.receive_data(
        client.send(Request(host="localhost", target="/ws/messages", extensions=[Offer()]))
    )
    list(server.events())
    client.receive_data(server.send(AcceptConnection(extensions=[ext])))
    assert [type(e).__name__ for e in client.events()] == ["AcceptConnection"]
    return server, client, ext


def test_a_frame_is_deflated_once_per_window_to_the_bytes_wsproto_would_send():
    """With server_no_context_takeover each message is compressed on its own: `wire_for` gives
    the bytes wsproto's own compressor would send (RSV1, raw deflate, sync flush tail removed),
    whatever the length form of the result, and a wsproto client inflates them."""
    from wsproto.events import TextMessage

    for size in (600, 5_000, 100_000, 200_000):
        text = json.dumps({"type": "messages", "html": os.urandom(size // 2).hex()})
        server, client, ext = wsproto_deflate_pair()
        assert ext.enabled() and ext.server_no_context_takeover
        frame = Frame(text)
        wire = frame.wire_for(ext.server_max_window_bits)
        assert wire[0] == 0xC1 and len(wire) < len(frame.wire), size
        assert wire == server.send(TextMessage(data=text)), size
        assert frame.wire_for(15) is wire, "compressed once, then shared"
        client.receive_data(wire + wire)
        got = [e.data for e in client.events() if isinstance(e, TextMessage)]
        assert got == [text, text], size


def test_small_frames_and_plain_sockets_get_the_plain_bytes():
    frame = Frame(json.dumps({"type": "messages", "html": "x" * 2000}))
    assert frame.wire_for(None) is frame.wire
    assert GAP_FRAME.wire_for(15) is GAP_FRAME.wire  # below DEFLATE_MIN_BYTES: RSV1 clear
    assert len(GAP_FRAME.wire) < DEFLATE_MIN_BYTES <= len(frame.wire)


def test_a_smaller_window_gets_its_own_compressed_bytes():
    """A client that asked for server_max_window_bits=10 inflates with a 1 KB window."""
    server, client, ext = wsproto_deflate_pair("server_max_window_bits=10")
    assert ext.server_max_window_bits == 10
    rows = "".join(f"<tr><td>{n}</td><td>{os.urandom(300).hex()}</td></tr>" for n in range(40))
    text = json.dumps({"type": "messages", "html": rows * 2})
    frame = Frame(text)
    small, wide = frame.wire_for(10), frame.wire_for(15)
    # The repeat lies ~25 KB back: within a 32 KB window, beyond a 1 KB one.
    assert len(wide) < 0.7 * len(small) and wide[1] == 126
    client.receive_data(small)
    assert [e.data for e in client.events()] == [text]
    with pytest.raises(zlib.error):  # the default window refers too far back for this client
        zlib.decompressobj(-10).decompress(wide[4:] + b"\x00\x00\xff\xff")


def test_a_filter_the_scope_no_longer_allows_gets_an_error_frame_that_closes(
    app, auth_enabled, write_reports
):
    """Free text needs access to details, which an anonymous viewer lacks: the push tells the
    socket why and marks the frame as the last (the socket then closes)."""
    fanout = Fanout(app, Hub("unused"))
    searching = Viewer(MessageFilter(q="master.h5"), None, None)
    fanout._viewers.add(searching)
    fanout.push([batch_of(write_reports(body()))])
    (frame,) = searching.take(0)
    assert frame.closes and frame.text.startswith('{"type": "error"')
    assert not GAP_FRAME.closes


class Writes:
    """A viewer's `write_now` that answers as told and records what it was given."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.frames: list[Frame] = []

    def __call__(self, frame: Frame):
        self.frames.append(frame)
        return self.answers.pop(0)


def test_a_frame_the_socket_takes_at_once_never_reaches_the_outbox():
    """The live process: the fan-out writes the frame itself, no wake-up of the socket's
    greenlet, nothing to hand over."""
    viewer = Viewer(MessageFilter(), None, None)
    viewer.write_now = writes = Writes(True)
    frame = Frame('{"n": 1}')
    viewer.put(frame)
    assert writes.frames == [frame]
    assert viewer.take(0) == [] and not viewer._ready.is_set()


def test_a_frame_written_in_part_wakes_the_handler_for_the_rest():
    viewer = Viewer(MessageFilter(), None, None)
    viewer.write_now = Writes(False)
    viewer.put(Frame('{"n": 1}'))
    assert viewer._ready.is_set()  # the handler's flush writes the rest
    assert viewer.take(0) == []


def test_frames_keep_their_order_behind_the_outbox():
    """A frame the socket could not take goes to the outbox, and so does every frame after it
    until the handler has sent them: never one written past another."""
    viewer = Viewer(MessageFilter(), None, None)
    viewer.write_now = writes = Writes(None)
    first, second, third = (Frame(f'{{"n": {n}}}') for n in range(3))
    viewer.put(first)
    viewer.put(second)
    assert writes.frames == [first]  # not asked again while the outbox holds a frame
    assert viewer.take(0) == [first, second]
    writes.answers.append(True)
    viewer.put(third)
    assert writes.frames == [first, third] and viewer.take(0) == []


def test_closing_frames_and_session_ends_always_go_through_the_handler():
    viewer = Viewer(MessageFilter(), None, None)
    viewer.write_now = writes = Writes()
    error = Frame('{"type": "error", "message": "x"}', closes=True)
    viewer.put(error)
    viewer.put(SESSION_ENDED)
    assert writes.frames == []
    assert viewer.take(0) == [error, SESSION_ENDED]


def test_the_fan_out_writes_whole_frames_in_order_on_a_gevent_socket():
    """routes._WholeWrites on gevent's sockets (the live process): `write_now` writes what
    fits without waiting, keeps the rest, and any later write (the handler's, the reader's
    pong) sends that rest first: the peer reads every byte in order."""
    import gevent
    import gevent.socket

    from webapp.live.routes import _WholeWrites

    ours, theirs = gevent.socket.socketpair()
    try:
        sock = _WholeWrites(ours)
        assert sock.can_write_now
        big = bytes(range(256)) * 16384  # 4 MB: more than the socket buffers hold
        assert sock.write_now(b"head") is True
        assert sock.write_now(big) is False  # in part; the rest is kept
        assert sock.write_now(b"never") is None  # nothing written past the rest
        received = bytearray()

        def read() -> None:
            while len(received) < 4 + len(big) + 4:
                received.extend(theirs.recv(1 << 16))

        reader = gevent.spawn(read)
        sock.send(b"tail")  # flushes the rest first
        reader.join(timeout=30)
        assert bytes(received) == b"head" + big + b"tail"
    finally:
        ours.close()
        theirs.close()


def test_the_page_tiers_sockets_and_gevent_subclasses_are_never_written_from_the_fan_out():
    """The page tier's threads (the standard library's sockets) hand every frame over as
    before; so does any subclass of gevent's socket (its TLS socket: bytes written under the
    encryption would be garbage)."""
    import socket

    import gevent.socket

    from webapp.live.routes import _WholeWrites

    class Wrapped(gevent.socket.socket):
        pass

    a, b = socket.socketpair()
    wrapped = Wrapped()
    try:
        assert not _WholeWrites(a).can_write_now
        assert not _WholeWrites(wrapped).can_write_now
    finally:
        for s in (a, b, wrapped):
            s.close()
