"""psycopg2 under gevent: wait for the server cooperatively instead of blocking the process.

psycopg2 is C code: in a gevent-patched process (the live process) a query would block every
greenlet until it returned. With a wait callback it hands each wait to gevent's hub, like any
patched socket (the approach of the psycogreen package, in a few lines).
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from .limits import cooperative


def gevent_wait_callback(conn, timeout=None) -> None:
    from gevent.socket import wait_read, wait_write

    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state == psycopg2.extensions.POLL_READ:
            wait_read(conn.fileno(), timeout=timeout)
        elif state == psycopg2.extensions.POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout)
        else:
            raise psycopg2.OperationalError(f"bad result from poll: {state!r}")


def install_if_cooperative() -> bool:
    """Install the callback in a gevent-patched process; True when it did."""
    if not cooperative():
        return False
    if psycopg2.extensions.get_wait_callback() is not gevent_wait_callback:
        psycopg2.extensions.set_wait_callback(gevent_wait_callback)
    return True
