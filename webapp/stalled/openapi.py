"""The documented query parameters of /api/v1/stalled (its `@api_doc` declaration is next to the
view, webapp/stalled/routes.py); they come from the filter's own declarations
(webapp/stalled/filters.py)."""

from __future__ import annotations

from ..apidoc import query
from .filters import DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT, STATES

_TEXT = {"type": "string", "maxLength": 500}

STALLED_PARAMETERS = [
    query(
        "days",
        "Days of reports to look at (default STALLED_WINDOW_DAYS).",
        {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
    ),
    query("stage", "A message type: only runs stopped at the stage holding it.", _TEXT),
    query(
        "state",
        "failed: the latest attempt at that stage failed; waiting: nothing later came.",
        {"type": "string", "enum": list(STATES)},
    ),
    query("instrument", "Instrument, case-insensitive (needs details access).", _TEXT),
    query("investigation", "Investigation, exact (needs details access).", _TEXT),
    query(
        "limit",
        "Runs listed per stage (counts are complete).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
]
