"""How many live sockets a process serves, in all and per client.

In the live process (`python -m webapp.processes live`, gunicorn's gevent worker) a socket is a
greenlet: it serves up to LIVE_MAX_SOCKETS. The page tier (`web`) answers `/ws/messages` too
when nothing routes it elsewhere; there, under gunicorn's gthread worker, each open WebSocket
holds one of the process's threads for as long as it is open. Without a bound, a few dozen sockets (anonymous ones included) took every
thread and pages and the API stopped answering. A process therefore serves at most
`per_process` sockets, always fewer than its threads, so page requests keep the rest; a client
(the signed-in user, or the address of an anonymous one) at most `per_client`. A socket over
either limit is closed at once with close code 1013 ("try again later") and the reason.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

#: RFC 6455 close code "Try Again Later": the server is at its limit for now.
CLOSE_TRY_AGAIN_LATER = 1013


class SocketLimitReached(Exception):
    """No slot for this socket; the message says which limit."""


class SocketSlots:
    """Counts open sockets in this process, per client and in all."""

    def __init__(self, per_process: int, per_client: int):
        self.per_process = per_process
        self.per_client = per_client
        self._lock = threading.Lock()
        self._total = 0
        self._by_client: dict[str, int] = {}

    @contextmanager
    def slot(self, client: str):
        """Hold one slot while the socket is open; raises SocketLimitReached when none is free."""
        with self._lock:
            if self._total >= self.per_process:
                raise SocketLimitReached(
                    f"this server has {self.per_process} live connections open, its limit; "
                    "try again later"
                )
            if self._by_client.get(client, 0) >= self.per_client:
                raise SocketLimitReached(
                    f"you have {self.per_client} live connections open, the limit per client; "
                    "close a tab or try again later"
                )
            self._total += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._total -= 1
                left = self._by_client[client] - 1
                if left:
                    self._by_client[client] = left
                else:
                    del self._by_client[client]

    @property
    def open(self) -> int:
        return self._total


def cooperative() -> bool:
    """True in a gevent-patched process (the live process): a socket holds no thread."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def per_process_limit(settings) -> int:
    """In the live process LIVE_MAX_SOCKETS. In a threaded web process WS_MAX_PER_PROCESS, or by
    default three quarters of the web threads (a quarter, at least two, always left for pages)."""
    if cooperative():
        return settings.LIVE_MAX_SOCKETS
    if settings.WS_MAX_PER_PROCESS:
        return min(settings.WS_MAX_PER_PROCESS, max(1, settings.WEB_THREADS - 2))
    return max(1, settings.WEB_THREADS - max(2, settings.WEB_THREADS // 4))


_slots: SocketSlots | None = None
_slots_lock = threading.Lock()


def get_slots(settings) -> SocketSlots:
    """The process-wide counter (created on first use, after gunicorn forked)."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = SocketSlots(per_process_limit(settings), settings.WS_MAX_PER_CLIENT)
        return _slots
