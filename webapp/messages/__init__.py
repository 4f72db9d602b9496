"""Message list, detail and trace pages."""

from flask import Blueprint

bp = Blueprint("messages", __name__)

from . import routes  # noqa: E402,F401
