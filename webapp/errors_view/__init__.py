"""errors_view area: `/errors` and `/api/v1/error-groups` (error groups from the rollups)."""

from flask import Blueprint

bp = Blueprint("errors_view", __name__)

from . import routes  # noqa: E402,F401
