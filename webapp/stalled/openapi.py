"""The OpenAPI paths of /api/v1/stalled (merged into webapp/api/openapi.py's document); its
parameters come from the filter's own declarations (webapp/stalled/filters.py)."""

from __future__ import annotations

from typing import Any

from .filters import DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT, STATES

_TEXT = {"type": "string", "maxLength": 500}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


STALLED_PARAMETERS = [
    _query(
        "days",
        "Days of reports to look at (default STALLED_WINDOW_DAYS).",
        {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
    ),
    _query("stage", "A message type: only runs stopped at the stage holding it.", _TEXT),
    _query(
        "state",
        "failed: the latest attempt at that stage failed; waiting: nothing later came.",
        {"type": "string", "enum": list(STATES)},
    ),
    _query("instrument", "Instrument, case-insensitive (needs details access).", _TEXT),
    _query("investigation", "Investigation, exact (needs details access).", _TEXT),
    _query(
        "limit",
        "Runs listed per stage (counts are complete).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def stalled_paths() -> dict[str, Any]:
    """The /api/v1/stalled path item."""
    return {
        "/api/v1/stalled": {
            "get": {
                "operationId": "listStalledRuns",
                "summary": "Pipeline runs that started but did not complete in time, by stage",
                "description": "A run is the reports of one pipeline sharing a hash within the "
                "window; stalled when its last stage has not succeeded and its first report is "
                "older than STALLED_AFTER_MINUTES (or its pipeline's STALLED_AFTER_BY_PIPELINE). "
                "Identifiers are left out without details access.",
                "parameters": STALLED_PARAMETERS,
                "responses": {
                    "200": {
                        "description": "Groups by stage (`groups`, each with `count` and `runs`)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": _error("A filter argument is not valid"),
                    "403": _error("The filter needs access to message details"),
                },
            }
        }
    }
