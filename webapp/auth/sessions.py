"""Server-side login sessions: what makes logout and deactivation end a session everywhere.

The Flask session cookie is signed, not encrypted or revocable: on its own, a copy of it keeps
working after logout. So each login creates a `user_sessions` row holding the SHA-256 of a random
token, and the cookie carries the token (`session[SESSION_KEY]`). A request is logged in only
while that row exists, the user is active and the row is younger than the session lifetime:

- logout deletes the row of that session (other browsers of the same person stay logged in);
- deactivating a user (admin view, CLI, anything that flushes `User.active = False`) deletes all
  of their rows (a flush listener in models/auth.py), so reactivating them later does not bring
  old cookies back;
- group membership is not cached anywhere: the scope is read from the database at each request
  and before each WebSocket push (webapp/auth/scope.py), so it applies at once.

Open WebSockets hold no request after the handshake: `SessionWatch` re-checks the session every
`CHECK_SECONDS` and before each push; the socket then sends an error frame and closes with
`SESSION_ENDED_CLOSE_CODE`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime

from flask import current_app, session
from sqlalchemy import delete, select

from models import User, UserSession

from ..extensions import db

#: Key of the session token in the (signed) Flask session cookie.
SESSION_KEY = "_sid"
#: How often an open WebSocket re-checks its session while idle (it also checks before a push).
CHECK_SECONDS = 5.0
#: WebSocket close code when the login behind the socket has ended (4000-4999: application).
SESSION_ENDED_CLOSE_CODE = 4401
SESSION_ENDED_MESSAGE = "Your session has ended (logged out or deactivated): log in again."


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _oldest_valid() -> datetime:
    return datetime.now(UTC) - current_app.permanent_session_lifetime


def start(user: User) -> str:
    """A new session of `user`; returns the token to put in the cookie. Flushes, no commit.

    A login lasts at most the session lifetime (PERMANENT_SESSION_LIFETIME, 31 days) from here,
    however active: older rows are no longer valid and are purged at each login.
    """
    token = secrets.token_urlsafe(32)
    db.session.execute(delete(UserSession).where(UserSession.created_at < _oldest_valid()))
    db.session.add(UserSession(id=_digest(token), user_id=user.id))
    db.session.flush()
    return token


def end(token: str | None) -> None:
    """End the session of this token (logout), in the current transaction (no commit)."""
    if token:
        db.session.execute(delete(UserSession).where(UserSession.id == _digest(str(token))))


def load_user(user_id: str | int, token: str | None) -> User | None:
    """The active user of this still-valid session, else None (one query)."""
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    if not token or not isinstance(token, str):
        return None
    return db.session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            User.id == uid,
            User.active.is_(True),
            UserSession.id == _digest(token),
            UserSession.created_at >= _oldest_valid(),
        )
    )


def is_alive(user_id: int, token: str | None) -> bool:
    """True while the session of `token` for `user_id` is valid (user active, row present)."""
    return load_user(user_id, token) is not None


def current_token() -> str | None:
    return session.get(SESSION_KEY)


class SessionWatch:
    """For a long-lived request (a WebSocket): is the login it started with still valid?

    `ended()` queries at most every `interval` seconds; `ended(force=True)` queries now. Anonymous
    sockets (user_id None) have nothing to end.
    """

    def __init__(self, user_id: int | None, token: str | None = None, interval=CHECK_SECONDS):
        self.user_id = user_id
        self.token = token if token is not None else current_token()
        self.interval = interval
        self._next = time.monotonic() + interval

    def ended(self, force: bool = False) -> bool:
        if self.user_id is None:
            return False
        now = time.monotonic()
        if not force and now < self._next:
            return False
        self._next = now + self.interval
        try:
            return not is_alive(self.user_id, self.token)
        finally:
            # Never hold a pooled connection between checks.
            db.session.remove()
