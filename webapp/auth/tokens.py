"""Personal API tokens: scripts call /api/v1/* as their user with `Authorization: Bearer <token>`.

- A token is `pacer_` + 32 random bytes (URL-safe base64); only its SHA-256 is stored
  (`api_tokens.token_hash`); it is shown once, on the page that created it.
- A bearer request is that user for the API only (paths under /api/v1/); pages ignore the
  header. It works while the token is not revoked and its user is active, and carries the
  user's scope and action rights as they are at that request (webapp/auth/scope.py).
- Bearer requests carry no ambient credential, so they are exempt from CSRF; cookie requests to
  the API are not (`CSRF.protect`).
- Creation, revocation and each use for an action (any non-GET API request) are audited;
  `last_used_at` is kept to the minute.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, g, jsonify, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select, update

from models import ApiToken, AuditLog, User

from ..extensions import db

PREFIX = "pacer_"
API_PREFIX = "/api/v1/"
NAME_MAX = 100
#: last_used_at is written at most this often per token (not one UPDATE per GET).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(user: User, name: str, actor: str) -> tuple[ApiToken, str]:
    """A new token of `user` (flushed, audited); returns the row and the token (shown once)."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=digest(token))
    db.session.add(row)
    db.session.flush()
    _audit(actor, "api-token-create", row)
    return row, token


def revoke(row: ApiToken, actor: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        _audit(actor, "api-token-revoke", row)


def of_user(user_id: int) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


def lookup(token: str) -> tuple[ApiToken, User] | None:
    """The live token and its active user, else None."""
    if not token.startswith(PREFIX):
        return None
    found = db.session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(
            ApiToken.token_hash == digest(token),
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    ).first()
    return (found[0], found[1]) if found else None


def _audit(actor: str, action: str, row: ApiToken, **detail) -> None:
    db.session.add(
        AuditLog(
            actor=actor,
            action=action,
            outcome="ok",
            message_ids=[],
            target=f"token {row.id} ({row.name})",
            detail={"token_id": row.id, "user_id": row.user_id, **detail},
        )
    )
    db.session.flush()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def authenticate_bearer():
    """before_request (registered before CSRF): on /api/v1/*, a bearer token makes the request
    its user's; a token that is not valid is a 401 whatever the session cookie says."""
    if not request.path.startswith(API_PREFIX):
        return None
    token = bearer_token()
    if token is None:
        return None
    if current_app.extensions["settings"].DISABLED_AUTH:
        return None  # everyone is administrator already
    found = lookup(token)
    if found is None:
        response = jsonify(
            {
                "error": "Unauthorized",
                "message": "The API token is not valid (unknown, revoked, or its user is "
                "deactivated).",
                "status": 401,
                "field": "Authorization",
            }
        )
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    row, user = found
    g._login_user = user  # Flask-Login's per-request user: this request only, no cookie
    request.api_token_id = row.id
    now = datetime.now(UTC)
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == row.id,
            (ApiToken.last_used_at.is_(None))
            | (ApiToken.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _audit(
            user.email or user.sub,
            "api-token-use",
            row,
            method=request.method,
            path=request.path[:300],
        )
    db.session.commit()
    return None


def token_id() -> int | None:
    """The id of the API token that authenticated this request, if one did."""
    return getattr(request, "api_token_id", None)


def forget_bearer_user(exc=None) -> None:
    """teardown_request: the bearer's user never outlives its request (an app context, and so
    `g`, can span several requests: tests, CLI)."""
    if token_id() is not None:
        g.pop("_login_user", None)


class CSRF(CSRFProtect):
    """CSRF protection that lets a bearer-authenticated API request through (no cookie is
    involved, so there is nothing to forge); every other POST is checked as usual."""

    def _is_exempt(self):
        if token_id() is not None:
            return True
        return super()._is_exempt()
