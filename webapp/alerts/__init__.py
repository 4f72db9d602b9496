"""alerts area (blueprint): alert rules, their incidents and notifications (issue 18)."""

from flask import Blueprint

bp = Blueprint("alerts", __name__)

from . import routes  # noqa: E402, F401  (registers the views on bp)
