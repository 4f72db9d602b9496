"""stats area (blueprint)."""

from flask import Blueprint

bp = Blueprint("stats", __name__)
