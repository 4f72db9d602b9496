"""system area (blueprint): the System page for administrators (`/system`), the same state as
`/healthz` (webapp/health/queries.py builds both) in HTML."""

from flask import Blueprint

bp = Blueprint("system", __name__)

from . import routes  # noqa: E402, F401  (registers the views on bp)
