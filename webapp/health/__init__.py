"""`/healthz` (JSON, 200 or 503) and `/metrics` (Prometheus text)."""

from flask import Blueprint

bp = Blueprint("health", __name__)

from . import prom, routes  # noqa: E402,F401
