"""stalled area: `/stalled` and `/api/v1/stalled`, pipeline runs that started but did not complete
within their pipeline's time (STALLED_AFTER_MINUTES), grouped by the stage they stopped at."""

from flask import Blueprint

bp = Blueprint("stalled", __name__)

from . import routes  # noqa: E402,F401
