"""The OpenAPI 3.1 document of `/api/v1`, generated: its paths come from the URL map and the
`@api_doc` declarations next to each view (webapp/apidoc.py); declared here, once, are what the
views share: the parameter lists (their filter parameters derive from the filters' own
declarations: the enums of webapp/messages/filters.py and the identifiers of
models/identifiers.py), the schemas and the common responses. The areas outside webapp/api keep
theirs beside their filters (webapp/stats/openapi.py, webapp/stalled/openapi.py).

tests/api/test_openapi.py checks that every registered /api/v1 route and method is described and
that the documented filter arguments are exactly those `MessageFilter` reads.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS

from ..actions.queries import IDS, MAX_SELECTED_IDS, THROUGH_ID
from ..apidoc import error, paths, query
from ..messages.filters import ACKNOWLEDGED, MIN_HASH_PREFIX, PAYLOAD_FORMATS, STATUSES
from ..messages.queries import MAX_LIMIT

_TEXT = {"type": "string", "maxLength": 500}

FILTER_PARAMETERS = [
    query(
        "type",
        "Message type; repeat for several (any of them).",
        {"type": "array", "items": _TEXT, "maxItems": 50},
        style="form",
        explode=True,
    ),
    query("status", "Outcome.", {"type": "string", "enum": list(STATUSES), "default": "all"}),
    query(
        "acknowledged",
        "Acknowledged messages: hidden (default), shown, or only them.",
        {"type": "string", "enum": list(ACKNOWLEDGED), "default": "hidden"},
    ),
    *(query(identifier.name, identifier.description, _TEXT) for identifier in IDENTIFIERS),
    query(
        "hash",
        f"Full hash or a prefix of at least {MIN_HASH_PREFIX} characters.",
        {"type": "string", "minLength": MIN_HASH_PREFIX, "maxLength": 500},
    ),
    query("id", "Report id (envelope id) or numeric message id.", _TEXT),
    query("routing_key", "Routing key (exact).", _TEXT),
    query(
        "payload_format",
        "Detected payload format.",
        {"type": "string", "enum": list(PAYLOAD_FORMATS)},
    ),
    query("fingerprint", "Error fingerprint (as listed by the error groups).", _TEXT),
    query(
        "q",
        "Free text over identifiers and error text (substring, case-insensitive).",
        {"type": "string", "minLength": 3, "maxLength": 500},
    ),
    query(
        "since",
        "Received at or after: ISO 8601 date or date-time (naive = UTC), before 9999-01-01.",
        {"type": "string", "examples": ["2026-03-31", "2026-03-31T10:15:00Z"]},
    ),
    query(
        "until",
        "Received before (exclusive); a bare date includes that whole day. Before 9999-01-01.",
        {"type": "string", "examples": ["2026-04-01"]},
    ),
]
PAGE_PARAMETERS = [
    query(
        "cursor",
        "Opaque cursor from `cursors.older` / `cursors.newer` of a previous page.",
        {"type": "string", "maxLength": 200},
    ),
    query(
        "limit",
        "Page size.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    ),
    query(
        "format",
        "json (a page) or csv (every matching message, streamed).",
        {"type": "string", "enum": ["json", "csv"], "default": "json"},
    ),
]

_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["id", "received_at", "message_type", "status", "errored", "details", "links"],
    "properties": {
        "id": {"type": "integer"},
        "received_at": {"type": "string", "format": "date-time"},
        "processing_start": _NULLABLE_TIME,
        "processing_end": _NULLABLE_TIME,
        "processing_ms": {
            "type": ["integer", "null"],
            "description": "null = processing time unknown (the report had no distinct start "
            "and end stamps: start == end, or only processed_at); never 0 for unknown",
        },
        "message_type": {"type": "string"},
        "status": {"type": "string", "enum": ["ok", "errored"]},
        "errored": {"type": "boolean"},
        "acknowledged": {"type": "boolean"},
        "acknowledged_at": _NULLABLE_TIME,
        "exchange_name": _NULLABLE_TEXT,
        "routing_key": _NULLABLE_TEXT,
        "hash": _NULLABLE_TEXT,
        "payload_format": {"type": "string"},
        "report_id": {"type": "string"},
        "details": {
            "type": "boolean",
            "description": "False: identifiers, errors and payload are left out "
            "(the caller may only see metadata).",
        },
        "identifiers": {"type": "object"},
        **{name: _NULLABLE_TEXT for name in PROMOTED_IDENTIFIERS},
        "error_fingerprint": _NULLABLE_TEXT,
        "error_summary": _NULLABLE_TEXT,
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "status"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "status": {"type": "integer"},
        "field": {"type": "string"},
    },
}

#: The schemas of the message routes (webapp/api/routes.py).
MESSAGE_SCHEMAS = {
    "MessageSummary": SUMMARY_SCHEMA,
    "Message": {
        "allOf": [
            {"$ref": "#/components/schemas/MessageSummary"},
            {
                "type": "object",
                "properties": {
                    "payload": _NULLABLE_TEXT,
                    "error_message": {},
                    "traceback": {},
                    "extra": {"type": "object"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "callback": _NULLABLE_TEXT,
                                "text": {"type": "string"},
                                "traceback": _NULLABLE_TEXT,
                            },
                        },
                    },
                },
            },
        ]
    },
    "MessagePage": {
        "type": "object",
        "required": ["items", "count", "count_exact", "limit", "cursors"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/MessageSummary"},
            },
            "count": {"type": "integer", "description": "Exact up to 10,000"},
            "count_exact": {"type": "boolean"},
            "limit": {"type": "integer"},
            "cursors": {
                "type": "object",
                "properties": {"older": _NULLABLE_TEXT, "newer": _NULLABLE_TEXT},
            },
            "links": {
                "type": "object",
                "properties": {"older": _NULLABLE_TEXT, "newer": _NULLABLE_TEXT},
            },
        },
    },
    "Trace": {
        "type": "object",
        "properties": {
            "message_id": {"type": "integer"},
            "stages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "stage": {"type": "integer"},
                        "message_type": {"type": "string"},
                        "state": {
                            "type": "string",
                            "enum": ["ok", "failed", "missing", "not-reached"],
                        },
                        "attempts": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "related": {"type": "array", "items": {"type": "object"}},
            "truncated": {"type": "boolean"},
        },
    },
    "Error": ERROR_SCHEMA,
}


# ---- actions -------------------------------------------------------------------------------------
MODE = query(
    "mode",
    "acknowledge (default) or unacknowledge.",
    {"type": "string", "enum": ["acknowledge", "unacknowledge"], "default": "acknowledge"},
)
_THROUGH_ID = query(
    THROUGH_ID,
    "Only messages up to this id (the preview's `through_id`); required by the POST.",
    {"type": "integer", "minimum": 0},
)
_EXPECTED = query(
    "expected",
    "The preview's count, recorded in the audit row; 409 when the count now differs (nothing "
    "done). A bulk re-ingest job checks it again when it starts and then publishes nothing.",
    {"type": "integer", "minimum": 0},
)
_SELECTED = query(
    IDS,
    f"Only these message ids (repeat, or comma-separated; at most {MAX_SELECTED_IDS}), still "
    "ANDed with the filter, scope and grant.",
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": MAX_SELECTED_IDS},
    style="form",
    explode=True,
)
STEP = query(
    "step",
    "`preview` on a POST: answer the preview (as the GET does) and do nothing; for a selection "
    "of many `ids`, which would outgrow a URL, sent in the JSON body.",
    {"type": "string", "enum": ["preview"]},
)
BULK_PARAMETERS = FILTER_PARAMETERS + [_SELECTED, _THROUGH_ID, _EXPECTED]
BULK_BODY = {
    "required": False,
    "description": "The same arguments as a JSON object (an alternative to the query string).",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
DENIED = error("The caller may not do this (no right, or re-ingest refused for the exchange)")
NOT_FOUND = error("Unknown message, or not in the caller's scope for this action")
UNAUTHORIZED = error("The bearer token is unknown, revoked, or its user is deactivated")

ACTION_SCHEMAS = {
    "AcknowledgeResult": {
        "type": "object",
        "properties": {
            "message_id": {"type": "integer"},
            "acknowledged": {"type": "boolean"},
            "acknowledged_at": _NULLABLE_TIME,
            "acknowledged_by": _NULLABLE_TEXT,
            "audit_id": {"type": "integer"},
        },
    },
    "ReingestResult": {
        "type": "object",
        "properties": {
            "message_id": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["ok", "error"]},
            "audit_id": {"type": "integer"},
            "exchange": _NULLABLE_TEXT,
            "routing_key": _NULLABLE_TEXT,
            "edited": {"type": "boolean"},
            "error": _NULLABLE_TEXT,
        },
    },
    "BulkPreview": {
        "type": "object",
        "properties": {
            "count": {"type": ["integer", "null"], "description": "null: counting timed out"},
            "through_id": {"type": "integer"},
            "mode": {"type": "string"},
            "refused": {"type": ["object", "null"]},
            "rate_per_second": {"type": "number"},
        },
    },
    "BulkAcknowledgeResult": {
        "type": "object",
        "properties": {
            "mode": {"type": "string"},
            "count": {"type": "integer"},
            "expected": {"type": ["integer", "null"]},
            "through_id": {"type": "integer"},
            "audit_id": {"type": "integer"},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "job_id": {"type": "integer"},
            "status_url": {"type": "string"},
            "outcome": {"type": "string", "description": "pending, running, then ok or error"},
            "total": {"type": ["integer", "null"]},
            "done": {"type": ["integer", "null"]},
            "failed": {"type": ["integer", "null"]},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document served at /api/v1/openapi.json: the app's /api/v1 routes as their views
    declare them (`spec.UndocumentedRoute` when one does not)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PACER Dashboard API",
            "version": "1",
            "description": "Messages processed by PACER, filtered and scoped like the pages, and "
            "the operator actions (acknowledge, re-ingest). Authentication is a personal API "
            "token (`Authorization: Bearer <token>`, from /account/tokens) or the dashboard "
            "session (cookie; its POSTs need the `X-CSRFToken` header); without details access, "
            "identifiers, errors and payloads are left out, error groups are counts per message "
            "type and time, and a trace links messages by hash only.",
        },
        "servers": [{"url": "/"}],
        "paths": paths(current_app.url_map, current_app.view_functions),
        "components": {
            "schemas": {**MESSAGE_SCHEMAS, **ACTION_SCHEMAS},
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (create one on /account/tokens): the "
                    "request is that user's, with their scope and action rights, on /api/v1 only.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
        "security": [{"token": []}, {"session": []}, {}],
    }
