"""JSON API (`/api/v1/...`): the same filters, scope and keyset cursors as the pages."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# The reads before the actions: the OpenAPI document lists the routes in registration order.
from . import routes  # noqa: E402,F401,I001
from . import actions  # noqa: E402,F401
