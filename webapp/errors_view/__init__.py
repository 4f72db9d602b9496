"""errors_view area (blueprint)."""

from flask import Blueprint

bp = Blueprint("errors_view", __name__)
