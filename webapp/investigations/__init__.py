"""investigations area (blueprint)."""

from flask import Blueprint

bp = Blueprint("investigations", __name__)
