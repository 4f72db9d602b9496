"""The /system page (thin view over webapp/health/queries.py)."""

from __future__ import annotations

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.scope import current_scope
from ..health import queries as status
from . import bp


@bp.get("/system")
def index():
    """Workers, queues, beat and its schedule, partitions, and what is wrong (admins only)."""
    if not current_scope().is_admin:
        # As /admin: log in first, then 403 for anyone who is not an administrator.
        settings = current_app.extensions["settings"]
        if not settings.DISABLED_AUTH and not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)
    health, code = status.system_status()
    return render_template(
        "system/index.html", health=health, http_status=code, duration=status.duration
    )
