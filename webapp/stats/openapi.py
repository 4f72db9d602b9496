"""The documented query parameters of /api/v1/stats and /api/v1/error-groups (their `@api_doc`
declarations are next to the views): the message filter's, less the arguments
webapp/stats/filters.py refuses, plus its ranges."""

from __future__ import annotations

from ..api.openapi import FILTER_PARAMETERS
from ..apidoc import query
from ..messages.filters import ACKNOWLEDGED
from .filters import DEFAULT_RANGE, RANGES, UNSUPPORTED

#: The message filter's arguments the rollups can answer (webapp/stats/filters.py refuses the rest).
STATS_PARAMETERS = [
    p
    if p["name"] != "acknowledged"
    else query(
        "acknowledged",
        "Count acknowledged messages too (shown) or not (hidden, default).",
        {"type": "string", "enum": [a for a in ACKNOWLEDGED if a != "only"], "default": "hidden"},
    )
    for p in FILTER_PARAMETERS
    if p["name"] not in UNSUPPORTED
] + [
    query(
        "range",
        "Window ending now when neither since nor until is given.",
        {"type": "string", "enum": list(RANGES), "default": DEFAULT_RANGE},
    )
]
