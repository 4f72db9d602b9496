"""App-wide wiring of the auth area: Flask-Login, the OIDC client, CSRF and security headers."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request
from flask_wtf.csrf import CSRFProtect

from ..extensions import login_manager
from .scope import current_scope

logger = logging.getLogger(__name__)

OAUTH_CLIENT = "sso"


def init_app(app: Flask) -> None:
    settings = app.extensions["settings"]

    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.user_loader(_load_user)

    # A page left open for hours must still be able to post: the token lives as long as the
    # session (the session cookie is HttpOnly + SameSite=Lax; the token is per session).
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    CSRFProtect(app)

    if not settings.DISABLED_AUTH:
        _register_oidc_client(app, settings)

    app.after_request(_security_headers)
    app.add_template_global(current_scope, "current_scope")
    app.add_template_global(lambda: not app.extensions["settings"].DISABLED_AUTH, "auth_enabled")


def _load_user(user_id: str):
    """The user of this request's session while that session is valid (webapp/auth/sessions.py).

    A session that was ended (logout elsewhere with a copy of the cookie, deactivation) or that
    predates server-side sessions is anonymous, and its login keys are dropped from the cookie.
    """
    from flask import session

    from . import sessions

    user = sessions.load_user(user_id, session.get(sessions.SESSION_KEY))
    if user is None:
        for key in ("_user_id", "_fresh", "_id", sessions.SESSION_KEY, "id_token"):
            session.pop(key, None)
    return user


def _register_oidc_client(app: Flask, settings) -> None:
    from authlib.integrations.flask_client import OAuth

    oauth = OAuth(app)
    oauth.register(
        OAUTH_CLIENT,
        client_id=settings.SSO_CLIENT_ID,
        client_secret=settings.SSO_CLIENT_SECRET,
        server_metadata_url=discovery_url(settings.SSO_SERVER_URL),
        client_kwargs={
            "scope": settings.SSO_SCOPES,
            "code_challenge_method": "S256",
            "timeout": 10,
        },
    )


def discovery_url(server_url: str) -> str:
    """The discovery document of `server_url` (accepts the issuer or the document itself)."""
    if server_url.endswith("/.well-known/openid-configuration"):
        return server_url
    return server_url.rstrip("/") + "/.well-known/openid-configuration"


def oidc_client():
    """The Authlib client of the configured provider (auth must be enabled)."""
    return current_app.extensions["authlib.integrations.flask_client"].create_client(OAUTH_CLIENT)


def _sso_origin() -> str:
    settings = current_app.extensions["settings"]
    if settings.DISABLED_AUTH or not settings.SSO_SERVER_URL:
        return ""
    parts = urlsplit(settings.SSO_SERVER_URL)
    return f"{parts.scheme}://{parts.netloc}"


def csp_nonce() -> str:
    """A per-request nonce (only Flask-Admin's own inline scripts use it)."""
    import secrets

    nonce = g.get("_csp_nonce")
    if nonce is None:
        nonce = g._csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy() -> str:
    script_src = "'self'"
    nonce = g.get("_csp_nonce")
    if nonce:
        script_src += f" 'nonce-{nonce}'"
    # Logout is a POST answered by a redirect to the provider's end-session endpoint; browsers
    # apply form-action to that redirect, so the provider's origin must be allowed there.
    form_action = " ".join(filter(None, ["'self'", _sso_origin()]))
    return (
        "default-src 'self'; "
        f"script-src {script_src}; "
        "style-src 'self'; "
        "img-src 'self' data:; "
        "connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; "
        "base-uri 'self'; "
        f"form-action {form_action}"
    )


def _security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy())
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
