"""App-wide wiring of the auth area: Flask-Login, the OIDC client, CSRF and security headers."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, url_for

from ..extensions import login_manager
from ..security import requested_nonce
from . import tokens
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
    # Bearer tokens first: a bearer API request is exempt from CSRF (webapp/auth/tokens.py).
    app.before_request(tokens.authenticate_bearer)
    app.teardown_request(tokens.forget_bearer_user)
    tokens.CSRF(app)

    if not settings.DISABLED_AUTH:
        _register_oidc_client(app, settings)

    app.before_request(_check_websocket_origin)
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


#: A Host header value fit to be echoed in a header (name or [IPv6], optional port).
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _origin(scheme: str, netloc: str) -> str:
    """scheme://host[:port], lower-cased, without the scheme's default port."""
    scheme, netloc = scheme.lower(), netloc.lower()
    host, sep, port = netloc.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        netloc = host
    return f"{scheme}://{netloc}"


def _request_host() -> str | None:
    host = request.host
    return host if _HOST_RE.match(host or "") else None


def external_url(endpoint: str, **values) -> str:
    """Absolute URL of `endpoint` for the outside world (OIDC redirect_uri, post-logout URL).

    Built from PUBLIC_URL when it is set (required in production with auth enabled), never
    from the request's Host header; in development without it, from the request.
    """
    settings = current_app.extensions["settings"]
    if not settings.PUBLIC_URL:
        return url_for(endpoint, _external=True, **values)
    path = url_for(endpoint, **values)
    root = request.script_root
    if root and path.startswith(root):
        path = path[len(root) :]
    return settings.PUBLIC_URL.rstrip("/") + path


def allowed_websocket_origins() -> set[str]:
    """Origins whose pages may open the dashboard's WebSockets: this request's own origin (its
    scheme and Host) and PUBLIC_URL's."""
    settings = current_app.extensions["settings"]
    allowed = set()
    host = _request_host()
    if host:
        allowed.add(_origin(request.scheme, host))
    if settings.PUBLIC_URL:
        parts = urlsplit(settings.PUBLIC_URL)
        allowed.add(_origin(parts.scheme, parts.netloc))
    return allowed


def _check_websocket_origin():
    """Refuse a WebSocket handshake from another site's page (403, before any upgrade).

    Browsers always send Origin on a WebSocket handshake, with the user's cookies: without this
    check any site could read the pushes of a logged-in visitor (cross-site WebSocket
    hijacking). Clients that send no Origin are not browsers and carry no ambient cookies.
    """
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        if _origin(parts.scheme, parts.netloc) in allowed_websocket_origins():
            return None
    logger.warning("WebSocket handshake from origin %r refused (host %r)", origin, request.host)
    return Response("WebSocket connections from other sites are refused.\n", 403)


def _websocket_sources() -> list[str]:
    """ws:// and wss:// of this host and of PUBLIC_URL's host, for connect-src.

    CSP Level 3 lets 'self' match ws(s) of the page's own host, but older browsers do not: the
    host is named explicitly as well.
    """
    settings = current_app.extensions["settings"]
    hosts = []
    host = _request_host()
    if host:
        hosts.append(host.lower())
    if settings.PUBLIC_URL:
        hosts.append(urlsplit(settings.PUBLIC_URL).netloc.lower())
    sources: list[str] = []
    for h in hosts:
        for scheme in ("ws", "wss"):
            source = f"{scheme}://{h}"
            if source not in sources:
                sources.append(source)
    return sources


def content_security_policy() -> str:
    script_src = "'self'"
    nonce = requested_nonce()
    if nonce:
        script_src += f" 'nonce-{nonce}'"
    # Logout is a POST answered by a redirect to the provider's end-session endpoint; browsers
    # apply form-action to that redirect, so the provider's origin must be allowed there.
    form_action = " ".join(filter(None, ["'self'", _sso_origin()]))
    # Only this site (and its WebSockets), never any ws:/wss: host.
    connect_src = " ".join(["'self'", *_websocket_sources()])
    return (
        "default-src 'self'; "
        f"script-src {script_src}; "
        "style-src 'self'; "
        "img-src 'self' data:; "
        f"connect-src {connect_src}; "
        "frame-ancestors 'none'; "
        "base-uri 'self'; "
        f"form-action {form_action}"
    )


#: Endpoints whose responses hold no report data and may be cached (CSS, JS, icons).
CACHEABLE_ENDPOINTS = frozenset({"static", "admin.static", "messages.favicon"})


def _security_headers(response):
    headers = response.headers
    if request.endpoint not in CACHEABLE_ENDPOINTS and "no-store" not in headers.get(
        "Cache-Control", ""
    ):
        # Pages, fragments and API answers carry report data: never kept by the browser or a
        # shared proxy (the back button after logout, a shared workstation).
        headers["Cache-Control"] = "no-store"
    headers.setdefault("Content-Security-Policy", content_security_policy())
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
