"""One pusher per process: renders each push once per distinct (filters, scope), for every socket.

Before, each socket queried and rendered its own frames: 1,000 sockets meant 1,000 queries and
1,000 renders per push, and a thread each. Now each socket is a `Viewer` (its filters, its user
and session, an outbox), and the process's one `Fanout` thread (a greenlet in the live process)
takes the hub's batches, at most once per `MIN_PUSH_INTERVAL`:

1. checks the session of every distinct (user, token) among the viewers (before each push, and
   every `CHECK_SECONDS` while idle): a viewer whose login ended gets `SESSION_ENDED` and its
   socket closes with 4401;
2. reads each distinct user's scope afresh (a permission change applies at the next push);
3. groups the viewers by (filters, scope without the user's name) and builds one frame per
   group, put in the outbox of every viewer of the group. A row is rendered once per push and
   scope, however many groups show it (most filters select a subset of what the unfiltered
   sockets get). The frame is encoded once, to the bytes of a whole WebSocket text frame
   (`Frame.wire`), which every member's socket writes as they are: before, simple-websocket
   (wsproto) encoded the same text again for each socket — UTF-8 and frame header, ~170 µs for
   a 100-row frame of ~100 KB, which for 1,000 sockets was most of the live process's CPU.
   Sockets that negotiated permessage-deflate (browsers offer it) get the frame compressed,
   also once per group (`Frame.wire_for`): the server declares `server_no_context_takeover`,
   so each message is deflated on its own and the same bytes suit every socket (deflate.py).
   A 100-row frame of 128 KB becomes ~8 KB: 16 times less for the kernel to copy per socket.

In the live process a frame is written to each socket by the fan-out itself when the socket
takes it without waiting (nearly always: nothing queued, room in its send buffer); otherwise it
goes to the socket's outbox, and the socket's own greenlet (or thread, in the page tier) sends
it, so a slow client never holds up the others. Handing every frame to the sockets' greenlets
cost a wake-up, two switches and a hand-over per socket and push (with `receive(timeout=0)`
45 % of the live process's CPU with 1,000 sockets).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Flask

from ..auth import sessions
from ..auth.scope import Scope, scope_for_user
from ..extensions import db
from ..messages import presenters, queries
from ..messages.filters import MessageFilter
from .hub import Batch, Hub, stop_hubs

logger = logging.getLogger(__name__)

#: At most two pushes per second per socket.
MIN_PUSH_INTERVAL = 0.5
#: Rows sent in one push; beyond that the client is told how many more arrived.
MAX_ROWS_PER_PUSH = 100
_WAIT_SECONDS = 1.0
#: Frames a viewer may have waiting; a client that reads slower than that is told it missed some.
MAX_OUTBOX = 32

#: Outbox item: the login behind the socket has ended (close with 4401).
SESSION_ENDED = object()


def text_frame(text: str) -> bytes:
    """`text` as one whole, unmasked WebSocket text frame (RFC 6455 5.2: what a server sends;
    the same bytes wsproto would produce without permessage-deflate)."""
    return _frame_bytes(0x81, text.encode())


def deflated_frame(payload: bytes | memoryview, window_bits: int) -> bytes:
    """The UTF-8 `payload` of a text message as one whole permessage-deflate frame (RFC 7692:
    RSV1 set, raw deflate with a fresh `window_bits` window, the final `00 00 ff ff` of the sync
    flush removed), inflatable by a client that was told `server_no_context_takeover`."""
    compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data[-4:] != b"\x00\x00\xff\xff":  # pragma: no cover - what zlib's sync flush ends with
        raise ValueError("deflate output does not end with a sync flush")
    return _frame_bytes(0xC1, memoryview(data)[:-4])


def _frame_bytes(first: int, payload: bytes | memoryview) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 1 << 16:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


#: zlib's default level: a 100-row frame of 128 KB deflates 16x in ~0.6 ms, once per group.
DEFLATE_LEVEL = 6
#: Frames shorter than this go out plain to every socket (hello, gap, small pushes): deflate
#: would save a few bytes for a zlib call. RSV1 clear is always allowed.
DEFLATE_MIN_BYTES = 512
_deflate_lock = threading.Lock()


class Frame:
    """One frame for any number of sockets: its JSON text and its bytes on the wire, encoded
    once, and deflated at most once per window size (`wire_for`). `closes`: an error frame,
    after which the server closes the socket."""

    __slots__ = ("_deflated", "closes", "text", "wire")

    def __init__(self, text: str, closes: bool = False):
        self.text = text
        self.wire = text_frame(text)
        self.closes = closes
        self._deflated: dict[int, bytes] = {}

    def wire_for(self, window_bits: int | None) -> bytes:
        """The bytes to write to a socket that negotiated permessage-deflate with this server
        window (`deflate.negotiated_window`), or not (None): the same bytes for every socket
        of a group, compressed by the first socket that needs them."""
        if window_bits is None or len(self.wire) < DEFLATE_MIN_BYTES:
            return self.wire
        wire = self._deflated.get(window_bits)
        if wire is None:
            # Threads of the page tier: the lock keeps two sockets from compressing the same
            # frame at once. (Greenlets: a zlib call does not yield, the lock is never waited.)
            with _deflate_lock:
                wire = self._deflated.get(window_bits)
                if wire is None:
                    header = {126: 4, 127: 10}.get(self.wire[1], 2)
                    wire = deflated_frame(memoryview(self.wire)[header:], window_bits)
                    self._deflated[window_bits] = wire
        return wire

    def __repr__(self) -> str:
        return f"Frame({self.text[:60]!r})"


GAP_FRAME = Frame(json.dumps({"type": "gap"}))


class Viewer:
    """One open socket as the fan-out sees it: filters, who, and the frames waiting to be sent.

    The outbox is a deque under a plain lock and the wake-up an Event (gevent's, in C, in the
    live process): a thousand sockets are woken every push, and a Condition's notify/wait
    (waiter locks and a timer per wait, in Python) was a quarter of the live process's CPU."""

    def __init__(self, filters: MessageFilter, user_id: int | None, token: str | None):
        self.filters = filters
        self.user_id = user_id
        self.token = token
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._outbox: deque[Any] = deque()
        #: Set by the socket's handler where a frame can be written from the fan-out without
        #: waiting (the live process's gevent sockets, routes._WholeWrites.write_now): True
        #: when all of it went out, False when part did (the handler writes the rest), None
        #: when nothing did (busy, full or failed: the frame goes to the outbox).
        self.write_now: Callable[[Frame], bool | None] | None = None

    def put(self, item: Any) -> None:
        with self._lock:
            if (
                self.write_now is not None
                and not self._outbox
                and isinstance(item, Frame)
                and not item.closes
            ):
                # Nothing waiting: write it now, without waking the socket's greenlet (a
                # thousand wake-ups, switches and hand-overs per push).
                written = self.write_now(item)
                if written:
                    return
                if written is False:
                    self._ready.set()  # the handler writes the rest
                    return
            if len(self._outbox) >= MAX_OUTBOX and item is not SESSION_ENDED:
                # The client does not keep up: drop what it has not read, tell it so.
                self._outbox.clear()
                self._outbox.append(GAP_FRAME)
            self._outbox.append(item)
        self._ready.set()

    def wake(self) -> None:
        """Wake the socket's handler without giving it anything (the client sent something,
        or the connection ended)."""
        self._ready.set()

    def take(self, timeout: float) -> list[Any]:
        """Everything waiting (Frames, or SESSION_ENDED), after up to `timeout` s (may be empty
        early: an item put between the wake-up and the hand-over leaves the next call nothing
        to wait for)."""
        if not self._outbox:
            self._ready.wait(timeout)
        # Cleared before the hand-over: anything put after it sets the Event again.
        self._ready.clear()
        with self._lock:
            items = list(self._outbox)
            self._outbox.clear()
        return items


@dataclasses.dataclass
class PushStats:
    """Counters of this process's fan-out (tests and the benchmark read them)."""

    pushes: int = 0
    #: Frames built (one per group with matching rows) and rows rendered (once per scope).
    renders: int = 0
    rows: int = 0
    frames: int = 0


class Fanout:
    """The pusher thread of this process and its viewers."""

    def __init__(self, app: Flask, hub: Hub, base_url: str = "http://localhost/"):
        self.app = app
        self.hub = hub
        self.base_url = base_url
        self.pid = os.getpid()
        self.stats = PushStats()
        self._viewers: set[Viewer] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sub = None

    @property
    def listening(self) -> threading.Event:
        return self.hub.listening

    def add(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.add(viewer)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._sub = self.hub.subscribe()
                self._thread = threading.Thread(
                    target=self._run, name="pacer-live-fanout", daemon=True
                )
                self._thread.start()

    def remove(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.discard(viewer)

    @property
    def viewer_count(self) -> int:
        with self._lock:
            return len(self._viewers)

    def _snapshot(self) -> list[Viewer]:
        with self._lock:
            return list(self._viewers)

    def _run(self) -> None:
        sub = self._sub
        last_push = 0.0
        next_check = time.monotonic() + sessions.CHECK_SECONDS
        while not self._stop.is_set():
            try:
                batches, gap = sub.wait(_WAIT_SECONDS)
                if gap:
                    for viewer in self._snapshot():
                        viewer.put(GAP_FRAME)
                if batches:
                    delay = last_push + MIN_PUSH_INTERVAL - time.monotonic()
                    if delay > 0:
                        # Throttle: let more batches gather, then push them together.
                        time.sleep(delay)
                        more, gap = sub.wait(0)
                        batches += more
                        if gap:
                            for viewer in self._snapshot():
                                viewer.put(GAP_FRAME)
                    # Pushes start at most every MIN_PUSH_INTERVAL (the time a push takes is
                    # not added to the next one's wait).
                    last_push = time.monotonic()
                    self.push(batches)
                    next_check = time.monotonic() + sessions.CHECK_SECONDS
                elif time.monotonic() >= next_check:
                    self.check_sessions(self._snapshot())
                    next_check = time.monotonic() + sessions.CHECK_SECONDS
            except Exception:
                # One bad push must not end live updates for the whole process.
                logger.exception("live: push failed")
                time.sleep(_WAIT_SECONDS)

    def stop(self) -> None:
        """End the pusher thread and its subscription (open viewers get nothing more)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_WAIT_SECONDS + MIN_PUSH_INTERVAL + 1)
        if self._sub is not None:
            self.hub.unsubscribe(self._sub)

    def check_sessions(self, viewers: list[Viewer]) -> list[Viewer]:
        """The viewers whose login is still valid; the others get SESSION_ENDED."""
        if not any(v.user_id is not None for v in viewers):
            return viewers
        with self.app.app_context():
            try:
                alive: dict[tuple[int, str | None], bool] = {}
                for v in viewers:
                    if v.user_id is not None and (v.user_id, v.token) not in alive:
                        alive[(v.user_id, v.token)] = sessions.is_alive(v.user_id, v.token)
            finally:
                db.session.remove()
        kept = []
        for v in viewers:
            if v.user_id is None or alive[(v.user_id, v.token)]:
                kept.append(v)
            else:
                v.put(SESSION_ENDED)
        return kept

    def push(self, batches: list[Batch]) -> None:
        """Render these batches once per distinct (filters, scope) and hand the frames out."""
        viewers = self.check_sessions(self._snapshot())
        if not viewers:
            return
        self.stats.pushes += 1
        ranges = [(b.min_id, b.max_id, b.received_from, b.received_to) for b in batches]
        sent_at = time.time()
        with self.app.test_request_context(base_url=self.base_url):
            try:
                # Per viewer only a dict insert (a thousand sockets, a handful of keys); the
                # scopes are read and made shareable once per distinct user.
                by_user: dict[tuple[MessageFilter, int | None], list[Viewer]] = {}
                for v in viewers:
                    by_user.setdefault((v.filters, v.user_id), []).append(v)
                scopes: dict[int | None, Scope] = {}
                groups: dict[tuple[MessageFilter, Scope], list[Viewer]] = {}
                for (filters, user_id), members in by_user.items():
                    if user_id not in scopes:
                        # Fresh each push: a permission change applies to open sockets too.
                        scopes[user_id] = _shared(scope_for_user(user_id))
                    groups.setdefault((filters, scopes[user_id]), []).extend(members)
                rows = _RowCache(self.app)
                for (filters, scope), members in groups.items():
                    frame = self._frame(ranges, filters, scope, rows, sent_at)
                    if frame is None:
                        continue
                    self.stats.renders += 1
                    for v in members:
                        v.put(frame)
                    self.stats.frames += len(members)
                self.stats.rows += len(rows)
            finally:
                # Never hold a pooled connection (or a transaction) between pushes.
                db.session.remove()

    def _frame(
        self,
        ranges: list,
        filters: MessageFilter,
        scope: Scope,
        rows_html: _RowCache,
        sent_at: float,
    ) -> Frame | None:
        """One frame (None when nothing matches). One or two queries."""
        try:
            scope.check_filters(filters)
        except Exception as exc:  # noqa: BLE001 - HTTPException: a filter no longer allowed
            message = getattr(exc, "description", None) or str(exc)
            return Frame(json.dumps({"type": "error", "message": message}), closes=True)
        rows = queries.messages_in_batches(scope, filters, ranges, limit=MAX_ROWS_PER_PUSH + 1)
        if not rows:
            return None
        truncated = len(rows) > MAX_ROWS_PER_PUSH
        rows = rows[:MAX_ROWS_PER_PUSH]
        total = (
            queries.count_messages_in_batches(scope, filters, ranges) if truncated else len(rows)
        )
        # What messages/_rows.html renders for these rows (without a page: no "older" link).
        html = "".join("\n" + rows_html.get(r, scope) for r in rows)
        return Frame(
            json.dumps(
                {
                    "type": "messages",
                    "html": html,
                    "ids": [r.id for r in rows],
                    "total": total,
                    "truncated": truncated,
                    # When the push started: the same for every frame of one push.
                    "sent_at": sent_at,
                }
            )
        )


class _RowCache:
    """messages/_row.html of each (message, scope) rendered once in a push."""

    def __len__(self) -> int:
        return len(self._html)

    def __init__(self, app: Flask):
        self.template = app.jinja_env.get_template("messages/_row.html")
        self.context: dict[str, Any] = {}
        app.update_template_context(self.context)
        self._html: dict[tuple[int, Scope], str] = {}

    def get(self, row: Any, scope: Scope) -> str:
        key = (row.id, scope)
        html = self._html.get(key)
        if html is None:
            html = self._html[key] = self.template.render(
                {**self.context, "m": presenters.summary(row, scope)}
            )
        return html


def _shared(scope: Scope) -> Scope:
    """The scope without who holds it: users with the same grants share their frames."""
    return dataclasses.replace(scope, user_id=None, actor="")


_fanouts: dict[str, Fanout] = {}
_fanouts_lock = threading.Lock()


def get_fanout(app: Flask, hub: Hub, base_url: str) -> Fanout:
    """This process's fan-out for `hub` (a new one after a fork: threads do not survive it)."""
    with _fanouts_lock:
        fanout = _fanouts.get(hub.dsn)
        if fanout is None or fanout.pid != os.getpid() or (fanout.hub, fanout.app) != (hub, app):
            fanout = _fanouts[hub.dsn] = Fanout(app, hub, base_url)
        return fanout


def stop_all() -> None:
    """Stop this process's fan-outs and hubs (their LISTEN connections closed): for a server that
    ends while its process goes on, such as the tests' in-process servers. Sockets opened later
    start new ones."""
    with _fanouts_lock:
        fanouts = list(_fanouts.values())
        _fanouts.clear()
    for fanout in fanouts:
        fanout.stop()
    stop_hubs()
