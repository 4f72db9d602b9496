"""stats area: `/stats`, `/api/v1/stats` and the rollups behind them (`flask rollups rebuild`)."""

from flask import Blueprint

bp = Blueprint("stats", __name__)

from . import routes  # noqa: E402,F401
