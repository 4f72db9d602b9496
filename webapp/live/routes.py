"""`/ws/messages`: new messages matching the socket's filters and the user's scope.

Protocol (server → client, JSON text frames):
  {"type": "hello"}                                   connected, filters accepted
  {"type": "messages", "html": "<tr>…", "ids": [...], "total": n, "truncated": bool,
   "sent_at": epoch seconds}
  {"type": "gap"}                                     some updates may have been missed
  {"type": "ping"}                                    keep-alive (every 25 s when idle)
  {"type": "error", "message": "..."}                 then the server closes the socket
The client sends nothing: a data message closes the socket with code 1008.
Over the socket limits (webapp/live/limits.py) the server closes at once with code 1013 and
the reason.
Pushes are batched and throttled to at most one per MIN_PUSH_INTERVAL seconds.
When the login behind the socket ends (logout, deactivation) the server sends an error frame and
closes with code 4401 (webapp/auth/sessions.py).

Served by the live process (`python -m webapp.processes live`, gevent: a socket is a greenlet)
behind the reverse proxy's `/ws/` route; the page tier (`web`, gthread) still answers it too,
bounded to a share of its threads. Either way the frames are rendered once per push for every
socket with the same (filters, scope) by the process's fan-out (webapp/live/fanout.py); this
handler only sends what its viewer's outbox receives.

permessage-deflate is accepted when the client offers it (browsers do), always with
`server_no_context_takeover` (webapp/live/deflate.py): each frame is then compressed once per
group, not once per socket, and a socket writes the form it negotiated (`Frame.wire_for`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from flask import current_app, request
from simple_websocket import ConnectionClosed
from werkzeug.exceptions import HTTPException

from ..auth.scope import current_scope
from ..auth.sessions import SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_MESSAGE, current_token
from ..errors import DomainError
from ..extensions import db, sock
from ..messages.filters import MessageFilter
from . import bp, deflate
from .fanout import (
    MAX_ROWS_PER_PUSH,
    MIN_PUSH_INTERVAL,
    SESSION_ENDED,
    Frame,
    Viewer,
    get_fanout,
)
from .hub import get_hub
from .limits import CLOSE_TRY_AGAIN_LATER, SocketLimitReached, get_slots

logger = logging.getLogger(__name__)

__all__ = ["MAX_ROWS_PER_PUSH", "MIN_PUSH_INTERVAL", "messages_socket"]

KEEPALIVE_SECONDS = 25.0
LISTEN_READY_SECONDS = 5.0
#: A client sends nothing on /ws/messages (pong and close are control frames): a message closes
#: the socket with 1008 (simple-websocket's reader wakes the handler, `_WakeHandler`).
CLOSE_POLICY_VIOLATION = 1008
CLIENT_MESSAGE_REFUSED = "this socket only sends"
#: How long a refused socket waits for the client to close its end.
CLOSE_WAIT_SECONDS = 2.0


# simple-websocket negotiates permessage-deflate with server_no_context_takeover (deflate.py).
deflate.install()


@sock.route("/ws/messages", bp=bp)
def messages_socket(ws):
    """Push newly ingested messages that match this socket's filters and the user's scope."""
    try:
        filters = MessageFilter.from_args(request.args)
        scope = current_scope()
        scope.check_filters(filters)
    except (DomainError, HTTPException) as exc:
        ws.send(json.dumps({"type": "error", "message": _reason(exc)}))
        return
    finally:
        db.session.remove()
    user_id = scope.user_id
    client = f"user:{user_id}" if user_id is not None else f"addr:{request.remote_addr}"
    try:
        with get_slots(current_app.extensions["settings"]).slot(client):
            viewer = Viewer(filters, user_id, current_token() if user_id is not None else None)
            _subscribe_and_serve(ws, viewer)
    except SocketLimitReached as exc:
        logger.info("live: socket refused for %s: %s", client, exc)
        ws.close(reason=CLOSE_TRY_AGAIN_LATER, message=str(exc)[:120])
        # Closing handshake: let the client read the close frame and close its end before the
        # server drops the connection (otherwise it may see a reset and no close code).
        ws.thread.join(CLOSE_WAIT_SECONDS)


def _subscribe_and_serve(ws, viewer: Viewer) -> None:
    app = current_app._get_current_object()
    _whole_writes(ws)
    fanout = get_fanout(app, get_hub(_listen_dsn()), request.url_root)
    window_bits = deflate.negotiated_window(request.environ)
    fanout.add(viewer)
    try:
        # "hello" promises every later commit: only send it once LISTEN is in place.
        if not fanout.listening.wait(LISTEN_READY_SECONDS):
            logger.warning("live: LISTEN not ready after %s s", LISTEN_READY_SECONDS)
        ws.send(json.dumps({"type": "hello"}))
        _serve(ws, viewer, window_bits)
    except ConnectionClosed:
        pass
    finally:
        fanout.remove(viewer)


def _serve(ws, viewer: Viewer, window_bits: int | None = None) -> None:
    """Send what the fan-out hands this viewer, deflated with `window_bits` when the socket
    negotiated permessage-deflate (else None); keep the socket alive when idle."""
    sock: _WholeWrites = ws.sock
    if sock.can_write_now:
        viewer.write_now = lambda frame: sock.write_now(frame.wire_for(window_bits))
    ws.event = _WakeHandler(ws.event, viewer)
    while ws.connected:
        # Woken by a frame for the outbox, by the rest of a frame the fan-out wrote in part,
        # by the client (a message, the end of the connection), or when the ping is due.
        due = sock.last_write + KEEPALIVE_SECONDS - time.monotonic()
        items = viewer.take(max(0.05, due))
        if ws.input_buffer:
            # Nothing to say on this socket: a client message would only pile up in
            # simple-websocket's buffer, which nothing reads. (Its `receive(timeout=0)` would
            # say the same with a gevent Timeout per call: 12 % of the live process's CPU with
            # 1,000 sockets, every socket asking at every push.)
            ws.close(reason=CLOSE_POLICY_VIOLATION, message=CLIENT_MESSAGE_REFUSED)
            return
        try:
            sock.flush()
        except OSError as exc:
            ws.connected = False
            raise ConnectionClosed(ws.close_reason, ws.close_message) from exc
        for item in items:
            if item is SESSION_ENDED:
                # The login behind the socket ended (logout, deactivation): checked by the
                # fan-out every few seconds and before each push (webapp/auth/sessions.py).
                ws.send(json.dumps({"type": "error", "message": SESSION_ENDED_MESSAGE}))
                ws.close(reason=SESSION_ENDED_CLOSE_CODE, message="session ended")
                return
            _send_frame(ws, item, window_bits)
            if item.closes:
                return
        if time.monotonic() - sock.last_write >= KEEPALIVE_SECONDS:
            ws.send(json.dumps({"type": "ping"}))


def _send_frame(ws, frame: Frame, window_bits: int | None = None) -> None:
    """Write the fan-out's already encoded frame, plain or deflated as the socket negotiated:
    the same bytes for every socket of its group (simple-websocket's `send` would encode and
    compress the text again, once per socket). What goes through `ws.send` (hello, ping, error)
    wsproto compresses itself, each message on its own (server_no_context_takeover), so the
    client's inflater never needs data from our frames, nor ours from its messages."""
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    try:
        ws.sock.sendall(frame.wire_for(window_bits))
    except OSError as exc:
        ws.connected = False
        raise ConnectionClosed(ws.close_reason, ws.close_message) from exc


class _WholeWrites:
    """The socket as simple-websocket sees it, with `send` writing everything, one writer at a
    time. simple-websocket writes with `sock.send`, which may write only part of the data: on
    gevent's sockets (the live process) a ~100 KB frame to a client whose buffers are full went
    out truncated and the rest of the stream was garbage. Here every write is whole, and the
    handler's frames, the fan-out's (`write_now`) and the reader's replies (pong, close) never
    interleave: the rest of a frame written in part goes out before anything else."""

    def __init__(self, sock):
        self._sock = sock
        self._lock = threading.Lock()
        #: The rest of a frame `write_now` wrote in part (the handler's `flush` writes it).
        self._pending: memoryview | None = None
        #: When something was last written (the keep-alive ping is due 25 s after).
        self.last_write = time.monotonic()
        # gevent's plain sockets (not TLS) take a per-call timeout: 0 writes what fits, now.
        gevent_socket = sys.modules.get("gevent.socket")
        self.can_write_now = gevent_socket is not None and type(sock) is gevent_socket.socket

    def send(self, data, *args) -> int:
        with self._lock:
            self._flush()
            self._sock.sendall(data, *args)
            self.last_write = time.monotonic()
        return len(data)

    def sendall(self, data, *args) -> None:
        with self._lock:
            self._flush()
            # One send takes a whole frame when the socket has room (nearly always); gevent's
            # sendall would first ask the kernel for the buffer size, every frame.
            sent = self._sock.send(data, *args)
            if sent < len(data):
                self._sock.sendall(memoryview(data)[sent:], *args)
            self.last_write = time.monotonic()

    def write_now(self, data: bytes) -> bool | None:
        """Write `data` from another greenlet (the fan-out's) without waiting: True when all
        of it went out, False when part did (the rest waits for `flush`), None when nothing
        did (another write under way, the rest of one waiting, no room, or an error: the
        handler meets it at its next write)."""
        if self._pending is not None or not self._lock.acquire(blocking=False):
            return None
        try:
            try:
                sent = self._sock.send(data, 0, 0.0)
            except OSError:  # BlockingIOError: no room at all
                return None
            self.last_write = time.monotonic()
            if sent < len(data):
                self._pending = memoryview(data)[sent:]
                return False
            return True
        finally:
            self._lock.release()

    def flush(self) -> None:
        """Write the rest of a frame `write_now` wrote in part (waiting for room)."""
        if self._pending is not None:
            with self._lock:
                self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._sock.sendall(pending)
            self.last_write = time.monotonic()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _WakeHandler:
    """simple-websocket's event (set by its reader when the client sent a message or the
    connection ended), also waking the socket's handler, which otherwise sleeps until a frame
    or the next ping is due."""

    def __init__(self, event, viewer: Viewer):
        self._event = event
        self._viewer = viewer

    def set(self) -> None:
        self._event.set()
        self._viewer.wake()

    def __getattr__(self, name):
        return getattr(self._event, name)


def _whole_writes(ws) -> None:
    if not isinstance(ws.sock, _WholeWrites):
        ws.sock = _WholeWrites(ws.sock)


def _listen_dsn() -> str:
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, HTTPException):
        return exc.description or exc.name
    return str(exc)
