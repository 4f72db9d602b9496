"""`/ws/messages`: new messages matching the socket's filters and the user's scope.

Protocol (server → client, JSON text frames):
  {"type": "hello"}                                   connected, filters accepted
  {"type": "messages", "html": "<tr>…", "ids": [...], "total": n, "truncated": bool,
   "sent_at": epoch seconds}
  {"type": "gap"}                                     some updates may have been missed
  {"type": "ping"}                                    keep-alive (every 25 s when idle)
  {"type": "error", "message": "..."}                 then the server closes the socket
Over the socket limits (webapp/live/limits.py) the server closes at once with code 1013 and
the reason.
Pushes are batched and throttled to at most one per MIN_PUSH_INTERVAL seconds.
When the login behind the socket ends (logout, deactivation) the server sends an error frame and
closes with code 4401 (webapp/auth/sessions.py).
"""

from __future__ import annotations

import json
import logging
import time

from flask import current_app, render_template, request
from simple_websocket import ConnectionClosed
from werkzeug.exceptions import HTTPException

from ..auth.scope import current_scope, scope_for_user
from ..auth.sessions import SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_MESSAGE, SessionWatch
from ..errors import DomainError
from ..extensions import db, sock
from ..messages import presenters, queries
from ..messages.filters import MessageFilter
from . import bp
from .hub import Batch, Subscription, get_hub
from .limits import CLOSE_TRY_AGAIN_LATER, SocketLimitReached, get_slots

logger = logging.getLogger(__name__)

#: At most two pushes per second per socket.
MIN_PUSH_INTERVAL = 0.5
#: Rows sent in one push; beyond that the client is told how many more arrived.
MAX_ROWS_PER_PUSH = 100
KEEPALIVE_SECONDS = 25.0
_WAIT_SECONDS = 1.0
LISTEN_READY_SECONDS = 5.0
#: How long a refused socket waits for the client to close its end.
CLOSE_WAIT_SECONDS = 2.0


@sock.route("/ws/messages", bp=bp)
def messages_socket(ws):
    """Push newly ingested messages that match this socket's filters and the user's scope."""
    try:
        filters = MessageFilter.from_args(request.args)
        scope = current_scope()
        queries.check_filters_allowed(scope, filters)
    except (DomainError, HTTPException) as exc:
        ws.send(json.dumps({"type": "error", "message": _reason(exc)}))
        return
    finally:
        db.session.remove()
    user_id = scope.user_id
    client = f"user:{user_id}" if user_id is not None else f"addr:{request.remote_addr}"
    try:
        with get_slots(current_app.extensions["settings"]).slot(client):
            _subscribe_and_serve(ws, filters, user_id)
    except SocketLimitReached as exc:
        logger.info("live: socket refused for %s: %s", client, exc)
        ws.close(reason=CLOSE_TRY_AGAIN_LATER, message=str(exc)[:120])
        # Closing handshake: let the client read the close frame and close its end before the
        # server drops the connection (otherwise it may see a reset and no close code).
        ws.thread.join(CLOSE_WAIT_SECONDS)


def _subscribe_and_serve(ws, filters: MessageFilter, user_id: int | None) -> None:
    hub = get_hub(_listen_dsn())
    sub = hub.subscribe()
    try:
        # "hello" promises every later commit: only send it once LISTEN is in place.
        if not hub.listening.wait(LISTEN_READY_SECONDS):
            logger.warning("live: LISTEN not ready after %s s", LISTEN_READY_SECONDS)
        ws.send(json.dumps({"type": "hello"}))
        _serve(ws, sub, filters, user_id)
    except ConnectionClosed:
        pass
    finally:
        hub.unsubscribe(sub)
        db.session.remove()


def _serve(ws, sub: Subscription, filters: MessageFilter, user_id: int | None) -> None:
    # The login behind the socket can end (logout, deactivation): checked every few seconds
    # and before each push, then the socket is closed (webapp/auth/sessions.py).
    watch = SessionWatch(user_id)
    last_push = 0.0
    last_send = time.monotonic()
    while ws.connected:
        if watch.ended():
            _close_session_ended(ws)
            return
        batches, gap = sub.wait(_WAIT_SECONDS)
        if gap:
            ws.send(json.dumps({"type": "gap"}))
            last_send = time.monotonic()
        if not batches:
            if time.monotonic() - last_send > KEEPALIVE_SECONDS:
                ws.send(json.dumps({"type": "ping"}))
                last_send = time.monotonic()
            continue
        delay = last_push + MIN_PUSH_INTERVAL - time.monotonic()
        if delay > 0:
            # Throttle: let more batches gather, then push them together.
            time.sleep(delay)
            more, gap = sub.wait(0)
            batches += more
            if gap:
                ws.send(json.dumps({"type": "gap"}))
        if watch.ended(force=True):
            _close_session_ended(ws)
            return
        message = _push(batches, filters, user_id)
        last_push = last_send = time.monotonic()
        if message is None:
            continue
        ws.send(json.dumps(message))
        if message["type"] == "error":
            return


def _close_session_ended(ws) -> None:
    ws.send(json.dumps({"type": "error", "message": SESSION_ENDED_MESSAGE}))
    ws.close(reason=SESSION_ENDED_CLOSE_CODE, message="session ended")


def _push(batches: list[Batch], filters: MessageFilter, user_id: int | None) -> dict | None:
    """The frame for these batches (None when nothing matches). One or two queries."""
    try:
        # Fresh each time: a permission change applies to open sockets too.
        scope = scope_for_user(user_id)
        try:
            queries.check_filters_allowed(scope, filters)
        except HTTPException as exc:
            return {"type": "error", "message": _reason(exc)}
        ranges = [(b.min_id, b.max_id, b.received_from, b.received_to) for b in batches]
        rows = queries.messages_in_batches(scope, filters, ranges, limit=MAX_ROWS_PER_PUSH + 1)
        if not rows:
            return None
        truncated = len(rows) > MAX_ROWS_PER_PUSH
        rows = rows[:MAX_ROWS_PER_PUSH]
        total = (
            queries.count_messages_in_batches(scope, filters, ranges) if truncated else len(rows)
        )
        items = [presenters.summary(r, scope) for r in rows]
        html = render_template("messages/_rows.html", rows=items, page=None)
        return {
            "type": "messages",
            "html": html,
            "ids": [r.id for r in rows],
            "total": total,
            "truncated": truncated,
            "sent_at": time.time(),
        }
    finally:
        # Never hold a pooled connection (or a transaction) between pushes.
        db.session.remove()


def _listen_dsn() -> str:
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, HTTPException):
        return exc.description or exc.name
    return str(exc)
