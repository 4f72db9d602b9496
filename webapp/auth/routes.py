"""OIDC login (authorization code + PKCE), callback and logout."""

from __future__ import annotations

import logging
import unicodedata
from urllib.parse import unquote, urlencode, urlsplit

import requests
from authlib.integrations.base_client.errors import OAuthError
from flask import current_app, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..errors import DomainError
from ..extensions import db
from . import bp, services, sessions
from .setup import external_url, oidc_client

logger = logging.getLogger(__name__)


def _settings():
    return current_app.extensions["settings"]


#: Longer `next` values are dropped (a URL of the dashboard's own is far shorter).
MAX_NEXT_LENGTH = 2048


def _safe_next(target: str | None) -> str | None:
    """`target` when it is a path of this site, else None: never redirect elsewhere after login.

    Browsers do not follow the raw string: they drop tab/CR/LF anywhere and leading C0/space,
    treat `\\` as `/`, and read `//host` as another site. So the value is judged as a browser
    (or a proxy that decodes and normalises it) would see it: it is refused when it, its NFKC
    form or its percent-decoded path holds a control, format or whitespace character or a
    backslash, has a scheme or a host, or does not start with exactly one `/`.
    """
    if not isinstance(target, str) or len(target) > MAX_NEXT_LENGTH:
        return None
    try:
        if not target.startswith("/") or not urlsplit(target).path.startswith("/"):
            return None
        forms = {target, unicodedata.normalize("NFKC", target)}
        decoded = urlsplit(target).path
        for _ in range(3):  # /%252F/ -> /%2F/ -> //
            decoded = unquote(decoded)
            forms.update((decoded, unicodedata.normalize("NFKC", decoded)))
        for form in forms:
            parts = urlsplit(form)
            if form.startswith("//") or parts.scheme or parts.netloc:
                return None
            if any(map(_unsafe_char, form)):
                return None
    except ValueError:  # e.g. an unbalanced "[" read as an IPv6 host
        return None
    return target


def _unsafe_char(ch: str) -> bool:
    return ch == "\\" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _home() -> str:
    return url_for("messages.index")


@bp.get("/login")
def login():
    """Start the OIDC authorization code flow (PKCE S256, state and nonce in the session)."""
    if _settings().DISABLED_AUTH:
        return redirect(_home())
    next_url = _safe_next(request.args.get("next"))
    if next_url:
        session["login_next"] = next_url
    try:
        # From PUBLIC_URL, never from the Host header (setup.external_url).
        return oidc_client().authorize_redirect(external_url("auth.callback"))
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OIDC provider unreachable at login: %s", exc)
        raise DomainError(
            "The login provider is not reachable right now; try again in a moment.", 503
        ) from None


@bp.get("/auth/callback")
def callback():
    """Finish the login: exchange the code, verify the ID token, create/update the user."""
    settings = _settings()
    if settings.DISABLED_AUTH:
        return redirect(_home())
    client = oidc_client()
    try:
        token = client.authorize_access_token()
    except OAuthError as exc:
        logger.info("OIDC callback refused: %s", exc)
        raise DomainError(f"Login failed: {exc.description or exc.error}", 400) from None
    except requests.RequestException as exc:
        logger.warning("OIDC token endpoint unreachable: %s", exc)
        raise DomainError("The login provider is not reachable right now.", 503) from None
    claims = dict(token.get("userinfo") or {})
    if settings.SSO_GROUPS_CLAIM and settings.SSO_GROUPS_CLAIM not in claims:
        # Many providers put groups only in the userinfo response, not in the ID token.
        try:
            claims.update({k: v for k, v in client.userinfo(token=token).items() if k != "sub"})
        except (requests.RequestException, OAuthError) as exc:
            logger.warning("userinfo request failed, groups not synced: %s", exc)
    if not claims.get("sub"):
        raise DomainError("The login provider returned no ID token claims.", 502)
    user = services.user_from_claims(claims, settings.SSO_GROUPS_CLAIM)
    if not user.active:
        db.session.commit()
        raise DomainError("This account is deactivated; ask an administrator.", 403)
    # A server-side session: logout and deactivation end it (webapp/auth/sessions.py).
    session_token = sessions.start(user)
    db.session.commit()
    next_url = session.pop("login_next", None)
    # A fresh session on login (no fixation); keep only what logout needs.
    session.clear()
    login_user(user)
    session[sessions.SESSION_KEY] = session_token
    if token.get("id_token"):
        session["id_token"] = token["id_token"]
    logger.info("login of user %s (%s)", user.id, user.sub)
    return redirect(_safe_next(next_url) or _home())


@bp.post("/logout")
def logout():
    """End the dashboard session and, when the provider supports it, the provider session."""
    settings = _settings()
    id_token = session.get("id_token")
    was_logged_in = current_user.is_authenticated
    # End the session server-side first: a copy of this cookie must not outlive the logout.
    sessions.end(session.get(sessions.SESSION_KEY))
    db.session.commit()
    logout_user()
    session.clear()
    if settings.DISABLED_AUTH or not was_logged_in:
        return redirect(_home())
    try:
        metadata = oidc_client().load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("provider metadata unavailable at logout: %s", exc)
        return redirect(_home())
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return redirect(_home())
    params = {
        "client_id": settings.SSO_CLIENT_ID,
        "post_logout_redirect_uri": external_url("messages.index"),
    }
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if "?" in endpoint else "?"
    return redirect(f"{endpoint}{separator}{urlencode(params)}")
