"""/account/tokens: a logged-in user creates and revokes their personal API tokens."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for
from flask_login import current_user

from models import ApiToken

from ..errors import DomainError
from ..extensions import db
from . import bp, tokens


def _user():
    if current_app.extensions["settings"].DISABLED_AUTH:
        return None
    if not current_user.is_authenticated:
        raise DomainError("Log in to manage your API tokens.", 401)
    return current_user._get_current_object()


def _actor(user) -> str:
    return user.email or user.sub


@bp.get("/account/tokens")
def api_tokens():
    user = _user()
    return _page(user)


@bp.post("/account/tokens")
def create_api_token():
    user = _user()
    if user is None:
        raise DomainError("API tokens need authentication (DISABLED_AUTH is true).", 400)
    name = (request.form.get("name") or "").strip()
    if not name or len(name) > tokens.NAME_MAX:
        page = _page(user, error=f"Give the token a name (1 to {tokens.NAME_MAX} characters).")
        return page, 400
    row, token = tokens.create(user, name, _actor(user))
    db.session.commit()
    return _page(user, created=row, token=token)


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke_api_token(token_id: int):
    user = _user()
    row = db.session.get(ApiToken, token_id) if user is not None else None
    if row is None or row.user_id != user.id:
        raise DomainError(f"token {token_id} not found", 404)
    tokens.revoke(row, _actor(user))
    db.session.commit()
    return redirect(url_for("auth.api_tokens"))


def _page(user, created=None, token=None, error=None):
    return render_template(
        "auth/tokens.html",
        tokens=tokens.of_user(user.id) if user is not None else [],
        auth_disabled=user is None,
        created=created,
        token=token,
        error=error,
    )
