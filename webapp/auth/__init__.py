"""auth area: OIDC login/logout, the user loader, CSRF, security headers and the permission scope.

Everything app-wide (Flask-Login, Authlib client, CSRFProtect, response headers, template globals)
is set up when the blueprint is registered, so `create_app` only needs to register `bp`.
"""

from flask import Blueprint

bp = Blueprint("auth", __name__)


@bp.record_once
def _setup(state) -> None:
    from .setup import init_app

    init_app(state.app)


from . import routes, token_routes  # noqa: E402,F401
