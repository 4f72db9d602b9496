"""investigations area (blueprint): the DOI / PaNOSC search item checks of finished investigations."""

from flask import Blueprint

bp = Blueprint("investigations", __name__)

from . import routes  # noqa: E402, F401  (registers the views on bp)
