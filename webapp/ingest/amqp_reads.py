"""Read-ahead for py-amqp's TCP transport: one `recv` per 64 KB instead of three per frame.

py-amqp reads each frame with exactly-sized `recv` calls (7-byte header, payload, frame end):
a report (method, header and body frames) costs nine system calls on the consumer thread, about
a third of its per-delivery CPU (bench/README.md, "Ingestion near the machine's limit").
`install()` replaces `TCPTransport._read` with one that asks the socket for up to READ_AHEAD
bytes and serves the next reads from what came with them.

Nothing else changes: `_read(n)` still returns exactly n bytes or raises, and on any exception
(a timeout, EINTR, a closed socket) everything received and not returned is left in
`_read_buffer`, where py-amqp's `read_frame` puts a partial frame back too. Whole frames that
wait in the buffer while the socket has nothing to read are not stranded: kombu's event-loop
reader calls `drain_events(timeout=0)` again after every frame until it times out, and the
blocking `drain_events` reads the buffer before the socket.

Two more steps of the consumer thread's per-delivery work use the read-ahead (bench/README.md,
"Ingestion near the machine's limit", "The worker's consumer thread"): a frame already buffered
is cut out of it in one step (`blocking_read`: no `having_timeout` context and no three `_read`
calls per frame, the same frame-end check), and kombu's event-loop reader drains every delivery
whose frames are already buffered before it returns to the event loop (`_make_reader`: no timer
check, `epoll_wait` and promise per delivery), at most MAX_BUFFERED_DRAINS at a time so timers
still run between them.
"""

from __future__ import annotations

import errno
import socket
from contextlib import nullcontext
from struct import unpack_from

from amqp import connection as _connection
from amqp import transport as _transport
from amqp.exceptions import RecoverableConnectionError, UnexpectedFrame
from kombu.transport import pyamqp as _pyamqp

READ_AHEAD = 65536
#: Deliveries drained from the read-ahead in one event-loop callback before the loop runs again
#: (its timers: the ingestor's flush and acks, heartbeats). ~25 reports of 2.4 KB fill 64 KB.
MAX_BUFFERED_DRAINS = 64
_original_read = _transport.TCPTransport._read
_original_setup = _transport.TCPTransport._setup_transport
_original_having_timeout = _transport.TCPTransport.having_timeout
_original_blocking_read = _connection.Connection.blocking_read
_original_make_reader = _pyamqp.Transport._make_reader


def _read(self, n, initial=False, _errnos=(errno.EAGAIN, errno.EINTR)):
    """Read exactly n bytes: from what the last `recv` brought, else from the socket.

    The bytes received ahead live in `_ahead` (from `_ahead_pos` on); py-amqp's own
    `_read_buffer` is only used as py-amqp uses it: empty, except after an exception, when it
    holds everything received and not returned yet (and read_frame prepends its partial frame).
    """
    ahead = self.__dict__.get("_ahead")
    if ahead and not self._read_buffer:
        pos = self._ahead_pos
        if len(ahead) - pos >= n:
            self._ahead_pos = pos + n
            return ahead[pos : pos + n]
    rbuf = self._read_buffer
    if ahead:
        rbuf += ahead[self._ahead_pos :]
    self._ahead, self._ahead_pos, self._read_buffer = b"", 0, b""
    recv = self._quick_recv
    try:
        while len(rbuf) < n:
            try:
                s = recv(max(n - len(rbuf), READ_AHEAD))
            except OSError as exc:
                if exc.errno in _errnos:
                    if initial and self.raise_on_initial_eintr:
                        raise TimeoutError() from None
                    continue
                raise
            if not s:
                raise OSError("Server unexpectedly closed connection")
            rbuf += s
    except BaseException:
        self._read_buffer = rbuf
        raise
    if len(rbuf) > n:
        self._ahead, self._ahead_pos = rbuf, n
    return rbuf[:n]


def _frame_buffered(self) -> bool:
    """A whole frame (7-byte header, payload, frame end) waits in the read-ahead: reading it
    touches no socket."""
    ahead = self.__dict__.get("_ahead")
    if not ahead or self._read_buffer:
        return False
    pos = self._ahead_pos
    available = len(ahead) - pos
    return available >= 8 and available >= int.from_bytes(ahead[pos + 3 : pos + 7]) + 8


def having_timeout(self, timeout):
    """py-amqp's `having_timeout`, without its two `settimeout` system calls (and its generator)
    when the next frame is already buffered: the timeout could not apply to a read that never
    reaches the socket. kombu's event loop drains with `timeout=0`, so this is most frames."""
    if timeout is not None and _frame_buffered(self):
        return nullcontext(self.sock)
    return _original_having_timeout(self, timeout)


def blocking_read(self, timeout=None):
    """py-amqp's `Connection.blocking_read`: read one frame and hand it to the frame handler.

    A frame already whole in the read-ahead is cut out of it directly (what `read_frame` would
    return, with the same frame-end check); anything else takes py-amqp's own path."""
    transport = self.transport
    ahead = transport.__dict__.get("_ahead")
    if ahead and not transport._read_buffer:
        pos = transport._ahead_pos
        if len(ahead) - pos >= 8:
            frame_type, channel, size = unpack_from(">BHI", ahead, pos)
            end = pos + 7 + size
            if len(ahead) > end:
                transport._ahead_pos = end + 1
                if ahead[end] != 206:
                    raise UnexpectedFrame(
                        f"Received frame_end {ahead[end]:#04x} while expecting 0xce"
                    )
                return self.on_inbound_frame((frame_type, channel, ahead[pos + 7 : end]))
    return _original_blocking_read(self, timeout)


def _make_reader(
    self,
    connection,
    timeout=socket.timeout,
    error=socket.error,
    _unavail=(errno.EAGAIN, errno.EINTR),
):
    """kombu's event-loop reader (`kombu.transport.base.Transport._make_reader`), which drains
    one delivery per event-loop iteration, draining on while the next frame is already buffered
    (up to MAX_BUFFERED_DRAINS deliveries); then it reschedules itself as kombu's does."""
    drain_events = connection.drain_events
    transport = connection.transport

    def _read(loop):
        if not connection.connected:
            raise RecoverableConnectionError("Socket was disconnected")
        try:
            drain_events(timeout=0)
            for _ in range(MAX_BUFFERED_DRAINS - 1):
                if not (connection.connected and _frame_buffered(transport)):
                    break
                drain_events(timeout=0)
        except timeout:
            return
        except error as exc:
            if exc.errno in _unavail:
                return
            raise
        loop.call_soon(_read, loop)

    return _read


def _setup_transport(self):
    _original_setup(self)
    self._ahead, self._ahead_pos = b"", 0


def install() -> None:
    """Use the read-ahead `_read` for every TCP connection of this process (idempotent)."""
    cls = _transport.TCPTransport
    cls._read = _read
    cls._setup_transport = _setup_transport
    cls.having_timeout = having_timeout
    _connection.Connection.blocking_read = blocking_read
    _pyamqp.Transport._make_reader = _make_reader


def uninstall() -> None:
    cls = _transport.TCPTransport
    cls._read = _original_read
    cls._setup_transport = _original_setup
    cls.having_timeout = _original_having_timeout
    _connection.Connection.blocking_read = _original_blocking_read
    _pyamqp.Transport._make_reader = _original_make_reader
