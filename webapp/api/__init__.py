"""JSON API (`/api/v1/...`): the same filters, scope and keyset cursors as the pages."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import actions, routes  # noqa: E402,F401
