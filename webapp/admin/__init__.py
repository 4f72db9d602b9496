"""admin area: Flask-Admin at /admin (admins only).

Flask-Admin registers its own blueprint named `admin` (endpoints `admin.index`, `group.index_view`,
...), so this package's blueprint only carries the set-up and is named differently.
"""

from flask import Blueprint

bp = Blueprint("admin_area", __name__)


@bp.record_once
def _setup(state) -> None:
    from .views import init_admin

    init_admin(state.app)
