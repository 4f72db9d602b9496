"""Request security shared by every area: the per-request CSP nonce.

The Content-Security-Policy itself is built in webapp/auth/setup.py (`content_security_policy`);
it allows the nonce of this module, when a page asked for one, besides 'self'.
"""

from __future__ import annotations

import secrets

from flask import g


def csp_nonce() -> str:
    """This request's script nonce, created on first use (only Flask-Admin's own inline scripts
    use it)."""
    nonce = g.get("_csp_nonce")
    if nonce is None:
        nonce = g._csp_nonce = secrets.token_urlsafe(16)
    return nonce


def requested_nonce() -> str | None:
    """The nonce this request handed out, if any (the CSP allows it)."""
    return g.get("_csp_nonce")
