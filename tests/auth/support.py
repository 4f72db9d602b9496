"""Helpers of the permission tests: logging a user in on a test client, the CSRF token.

Logging in is done the way Flask-Login itself stores a login (the user id in the signed session),
from the test side only: there is no login backdoor in the application. Users, groups and the
seeded messages come from tests/factories.py (fixtures: tests/fixtures.py).
"""

from __future__ import annotations

import re

ADMIN_GROUP = "Administrator"


def login(client, user) -> str:
    """Log `user` in on this test client: what the OIDC callback stores (a server-side session
    row, and in the signed cookie the user id as flask_login.login_user does, plus the session
    token). Returns the token."""
    from flask import g, has_app_context

    from webapp.auth import sessions
    from webapp.extensions import db

    token = sessions.start(user)
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session[sessions.SESSION_KEY] = token
    if has_app_context():
        # Tests keep one app context across requests; Flask-Login caches the user on `g`.
        g.pop("_login_user", None)
    return token


def csrf_token(client, path: str = "/no-such-page") -> str:
    """The CSRF token of the client's session, read from the page's <meta name="csrf-token">."""
    response = client.get(path)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.get_data(as_text=True))
    assert match, f"no csrf meta tag on {path} ({response.status_code})"
    return match.group(1)
