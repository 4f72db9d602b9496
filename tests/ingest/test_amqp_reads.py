"""The read-ahead of py-amqp's TCP transport (webapp/ingest/amqp_reads.py) returns exactly the
frames the stock one does: across recv boundaries, timeouts in the middle of a frame, frames
larger than the read-ahead, and through a real broker."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
import uuid

import amqp
import pytest
from amqp import transport as amqp_transport
from amqp.exceptions import UnexpectedFrame
from kombu import Connection, Consumer, Exchange, Producer, Queue

from webapp.ingest import amqp_reads


@pytest.fixture
def read_ahead():
    amqp_reads.install()
    yield
    amqp_reads.uninstall()


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _transport(sock: socket.socket) -> amqp_transport.TCPTransport:
    t = amqp_transport.TCPTransport.__new__(amqp_transport.TCPTransport)
    t.sock, t.connected, t.raise_on_initial_eintr = sock, True, True
    t._setup_transport()
    return t


@pytest.mark.parametrize("installed", [False, True])
def test_frames_survive_split_sends_and_timeouts(installed):
    if installed:
        amqp_reads.install()
    try:
        payloads = [b"m" * 12, b"h" * 80, b"b" * 2400, b"x" * 200_000, b"", b"t" * 9]
        stream = b"".join(_frame(1 + i % 3, i, p) for i, p in enumerate(payloads))
        ours, theirs = socket.socketpair()
        t = _transport(ours)
        got = []
        # Sent in awkward pieces (inside headers, payloads and frame ends), with reads that time
        # out in between: every frame must come back whole and in order.
        cuts = [0, 3, 7, 20, 21, 130, 2500, 2600, 70_000, 150_000, len(stream)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            theirs.sendall(stream[a:b])
            while True:
                try:
                    with t.having_timeout(0.05):
                        got.append(t.read_frame())
                except TimeoutError:
                    break
        assert [(f[0], f[1], bytes(f[2])) for f in got] == [
            (1 + i % 3, i, p) for i, p in enumerate(payloads)
        ]
        ours.close()
        theirs.close()
    finally:
        amqp_reads.uninstall()


def test_read_ahead_takes_fewer_recv_calls(read_ahead):
    ours, theirs = socket.socketpair()
    t = _transport(ours)
    calls = []
    recv = ours.recv
    t._quick_recv = lambda n: calls.append(n) or recv(n)
    theirs.sendall(b"".join(_frame(3, 1, b"p" * 2400) for _ in range(20)))
    for _ in range(20):
        assert bytes(t.read_frame()[2]) == b"p" * 2400
    # Stock py-amqp: three exactly-sized recv calls per frame (60 here).
    assert len(calls) < 10
    ours.close()
    theirs.close()


def test_a_closed_socket_still_raises(read_ahead):
    ours, theirs = socket.socketpair()
    t = _transport(ours)
    theirs.sendall(_frame(1, 1, b"abc")[:5])
    theirs.close()
    with pytest.raises(OSError):
        t.read_frame()
    ours.close()


def _queue_with(conn, prefix: str, bodies: list[bytes]):
    """A throwaway queue (and the channel that declared it) holding `bodies`, in order."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="direct", durable=False, auto_delete=True)
    queue = Queue(name, exchange, routing_key="k", durable=False, auto_delete=True)
    channel = conn.channel()
    queue(channel).declare()
    producer = Producer(channel, exchange=exchange)
    for body in bodies:
        producer.publish(body, routing_key="k", content_type="application/octet-stream")
    return queue, channel


def test_messages_through_the_broker_arrive_whole(read_ahead, settings):
    """Many persistent messages of mixed sizes (one over frame_max, split into body frames),
    consumed with a large prefetch: every body exactly once, in order."""
    bodies = [(f"{i}:".encode() + b"x" * (i * 97 % 5000)) for i in range(3000)]
    bodies.insert(1500, b"big" + b"y" * 300_000)
    received: list[bytes] = []
    done = threading.Event()
    with Connection(settings.broker_url) as conn:
        queue, channel = _queue_with(conn, "test-read-ahead", bodies)

        def on_message(message):
            received.append(message.body)
            message.ack()
            if len(received) == len(bodies):
                done.set()

        with Consumer(
            conn.channel(), queues=[queue], on_message=on_message, accept=None, prefetch_count=1000
        ):
            while not done.is_set():
                conn.drain_events(timeout=10)
        queue(channel).delete()
    assert received == bodies


class _CountingSocket(socket.socket):
    """A socket that counts its `settimeout` calls (each one a system call)."""

    settimeouts = 0

    def settimeout(self, value):
        type(self).settimeouts += 1
        super().settimeout(value)


@pytest.mark.parametrize("installed", [False, True])
def test_buffered_frames_are_read_without_settimeout(installed):
    if installed:
        amqp_reads.install()
    try:
        a, theirs = socket.socketpair()
        ours = _CountingSocket(fileno=a.detach())
        ours.settimeout(None)
        t = _transport(ours)
        theirs.sendall(b"".join(_frame(3, 1, b"p" * 2400) for _ in range(20)))
        _CountingSocket.settimeouts = 0
        got = []
        # kombu's event loop: drain with timeout=0 until the socket has nothing more.
        while True:
            try:
                with t.having_timeout(0):
                    got.append(bytes(t.read_frame()[2]))
            except TimeoutError:
                break
        assert got == [b"p" * 2400] * 20
        if installed:
            # Only the reads that reach the socket set its timeout (and restore it).
            assert _CountingSocket.settimeouts <= 6
        else:
            assert _CountingSocket.settimeouts >= 40  # stock py-amqp: two per frame
        assert ours.gettimeout() is None  # the blocking mode is restored either way
        ours.close()
        theirs.close()
    finally:
        amqp_reads.uninstall()


def _blocking_reader(t: amqp_transport.TCPTransport):
    """py-amqp's Connection around transport `t`, with a frame handler that records frames."""
    conn = amqp.Connection.__new__(amqp.Connection)
    conn.transport = t
    got: list = []
    conn.on_inbound_frame = lambda frame: got.append((frame[0], frame[1], bytes(frame[2])))
    return conn, got


@pytest.mark.parametrize("installed", [False, True])
def test_blocking_read_hands_on_the_same_frames(installed):
    """Connection.blocking_read (one frame per call, buffered frames cut straight out of the
    read-ahead when installed) hands the frame handler exactly the frames stock py-amqp does,
    across split sends and timeouts, and refuses a bad frame end the same way."""
    if installed:
        amqp_reads.install()
    try:
        payloads = [b"m" * 12, b"h" * 80, b"b" * 2400, b"x" * 100_000, b"", b"t" * 9, b"c" * 40]
        stream = b"".join(_frame(1 + i % 3, i, p) for i, p in enumerate(payloads))
        ours, theirs = socket.socketpair()
        conn, got = _blocking_reader(_transport(ours))
        cuts = [0, 3, 7, 20, 21, 130, 2500, 2600, 2620, 2700, 70_000, len(stream)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            theirs.sendall(stream[a:b])
            while True:
                try:
                    conn.blocking_read(0.05)
                except TimeoutError:
                    break
        assert got == [(1 + i % 3, i, p) for i, p in enumerate(payloads)]
        # A frame whose end octet is not 0xce, buffered behind a good one: the good one is
        # read, the bad one raises UnexpectedFrame, and the frame after it is read whole.
        bad = _frame(3, 1, b"bad")[:-1] + b"\x00"
        theirs.sendall(_frame(3, 1, b"good") + bad + _frame(3, 2, b"next"))
        del got[:]
        conn.blocking_read(1)
        with pytest.raises(UnexpectedFrame):
            conn.blocking_read(1)
        conn.blocking_read(1)
        assert got == [(3, 1, b"good"), (3, 2, b"next")]
        ours.close()
        theirs.close()
    finally:
        amqp_reads.uninstall()


class _Loop:
    """The part of kombu's Hub the event-loop reader uses."""

    def __init__(self):
        self.scheduled = []

    def call_soon(self, callback, *args):
        self.scheduled.append((callback, args))


@pytest.mark.parametrize("installed", [False, True])
def test_event_loop_reader_drains_buffered_deliveries(installed, settings):
    """kombu's event-loop reader delivers every message once and in order; installed, one
    callback drains the deliveries already buffered (at most MAX_BUFFERED_DRAINS) instead of
    one per event-loop iteration, and reschedules itself exactly as kombu's does."""
    if installed:
        amqp_reads.install()
    try:
        bodies = [f"{i}:".encode() + b"r" * 2400 for i in range(400)]
        received: list[bytes] = []
        per_callback: list[int] = []
        with Connection(settings.broker_url) as conn:
            queue, channel = _queue_with(conn, "test-reader", bodies)
            with Consumer(
                conn.channel(),
                queues=[queue],
                on_message=lambda m: received.append(m.body),
                accept=None,
                no_ack=True,
                prefetch_count=1000,
            ):
                amqp_conn = conn.connection
                reader = conn.transport._make_reader(amqp_conn)
                loop = _Loop()
                deadline = time.monotonic() + 30
                while len(received) < len(bodies) and time.monotonic() < deadline:
                    before = len(received)
                    loop.scheduled.clear()
                    reader(loop)
                    per_callback.append(len(received) - before)
                    if loop.scheduled:
                        assert loop.scheduled == [(reader, (loop,))]
                    else:  # the socket had nothing: wait for it as the event loop would
                        select.select([amqp_conn.transport.sock], [], [], 1)
            queue(channel).delete()
        assert received == bodies
        if installed:
            assert max(per_callback) > 1
            assert max(per_callback) <= amqp_reads.MAX_BUFFERED_DRAINS
            assert len(per_callback) < len(bodies) / 3
        else:
            assert max(per_callback) == 1  # kombu: one delivery per event-loop iteration
    finally:
        amqp_reads.uninstall()
