"""The OpenAPI 3.1 document of `/api/v1`.

Written here, but its filter parameters come from the filters' own declarations (the enums of
webapp/messages/filters.py, the arguments webapp/stats/filters.py refuses and its ranges, the
identifiers of models/identifiers.py), and
tests/api/test_openapi.py checks that every registered /api/v1 route and method is described and
that the documented filter arguments are exactly those `MessageFilter` reads.
"""

from __future__ import annotations

from typing import Any

from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS

from ..actions.queries import IDS, MAX_SELECTED_IDS, THROUGH_ID
from ..messages.filters import ACKNOWLEDGED, MIN_HASH_PREFIX, PAYLOAD_FORMATS, STATUSES
from ..messages.queries import MAX_LIMIT
from ..stalled.openapi import stalled_paths
from ..stats.filters import DEFAULT_RANGE, RANGES, UNSUPPORTED


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


_TEXT = {"type": "string", "maxLength": 500}

FILTER_PARAMETERS = [
    _query(
        "type",
        "Message type; repeat for several (any of them).",
        {"type": "array", "items": _TEXT, "maxItems": 50},
        style="form",
        explode=True,
    ),
    _query("status", "Outcome.", {"type": "string", "enum": list(STATUSES), "default": "all"}),
    _query(
        "acknowledged",
        "Acknowledged messages: hidden (default), shown, or only them.",
        {"type": "string", "enum": list(ACKNOWLEDGED), "default": "hidden"},
    ),
    *(_query(identifier.name, identifier.description, _TEXT) for identifier in IDENTIFIERS),
    _query(
        "hash",
        f"Full hash or a prefix of at least {MIN_HASH_PREFIX} characters.",
        {"type": "string", "minLength": MIN_HASH_PREFIX, "maxLength": 500},
    ),
    _query("id", "Report id (envelope id) or numeric message id.", _TEXT),
    _query("routing_key", "Routing key (exact).", _TEXT),
    _query(
        "payload_format",
        "Detected payload format.",
        {"type": "string", "enum": list(PAYLOAD_FORMATS)},
    ),
    _query("fingerprint", "Error fingerprint (as listed by the error groups).", _TEXT),
    _query(
        "q",
        "Free text over identifiers and error text (substring, case-insensitive).",
        {"type": "string", "minLength": 3, "maxLength": 500},
    ),
    _query(
        "since",
        "Received at or after: ISO 8601 date or date-time (naive = UTC), before 9999-01-01.",
        {"type": "string", "examples": ["2026-03-31", "2026-03-31T10:15:00Z"]},
    ),
    _query(
        "until",
        "Received before (exclusive); a bare date includes that whole day. Before 9999-01-01.",
        {"type": "string", "examples": ["2026-04-01"]},
    ),
]
PAGE_PARAMETERS = [
    _query(
        "cursor",
        "Opaque cursor from `cursors.older` / `cursors.newer` of a previous page.",
        {"type": "string", "maxLength": 200},
    ),
    _query(
        "limit",
        "Page size.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    ),
    _query(
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


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ID_PARAM = {
    "name": "message_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document served at /api/v1/openapi.json."""
    document = _base_document()
    document["paths"].update(_stats_paths())
    document["paths"].update(stalled_paths())
    document["paths"].update(_action_paths())
    document["components"]["schemas"].update(ACTION_SCHEMAS)
    document["components"]["securitySchemes"] = {
        "token": {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (create one on /account/tokens): the request "
            "is that user's, with their scope and action rights, on /api/v1 only.",
        },
        "session": {"type": "apiKey", "in": "cookie", "name": "session"},
    }
    document["security"] = [{"token": []}, {"session": []}, {}]
    return document


def _base_document() -> dict[str, Any]:
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
        "paths": {
            "/api/v1/messages": {
                "get": {
                    "operationId": "listMessages",
                    "summary": "Messages, newest first, with keyset pagination; or CSV export",
                    "parameters": FILTER_PARAMETERS + PAGE_PARAMETERS,
                    "responses": {
                        "200": {
                            "description": "A page of messages (or the CSV file)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/MessagePage"}
                                },
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        "400": _error("A filter, cursor or limit is not valid"),
                        "403": _error("The filter needs access to message details"),
                    },
                }
            },
            "/api/v1/messages/{message_id}": {
                "get": {
                    "operationId": "getMessage",
                    "summary": "One message with payload, errors and tracebacks",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {
                            "description": "The message",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Message"}
                                }
                            },
                        },
                        "404": _error("Unknown message, or not visible to the caller"),
                    },
                }
            },
            "/api/v1/messages/{message_id}/trace": {
                "get": {
                    "operationId": "traceMessage",
                    "summary": "The pipeline stages around one message, in order",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": {
                            "description": "The trace",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Trace"}
                                }
                            },
                        },
                        "404": _error("Unknown message, or not visible to the caller"),
                    },
                }
            },
            "/api/v1/docs": {
                "get": {
                    "operationId": "docs",
                    "summary": "This document, browsable (Swagger UI)",
                    "responses": {
                        "200": {
                            "description": "An HTML page",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
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
        },
    }


# ---- stats and error groups ----------------------------------------------------------------------
#: The message filter's arguments the rollups can answer (webapp/stats/filters.py refuses the rest).
STATS_PARAMETERS = [
    p
    if p["name"] != "acknowledged"
    else _query(
        "acknowledged",
        "Count acknowledged messages too (shown) or not (hidden, default).",
        {"type": "string", "enum": [a for a in ACKNOWLEDGED if a != "only"], "default": "hidden"},
    )
    for p in FILTER_PARAMETERS
    if p["name"] not in UNSUPPORTED
] + [
    _query(
        "range",
        "Window ending now when neither since nor until is given.",
        {"type": "string", "enum": list(RANGES), "default": DEFAULT_RANGE},
    )
]


def _json_ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _stats_paths() -> dict[str, Any]:
    return {
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Tiles, series per type, monthly heatmap and top error groups",
                "parameters": STATS_PARAMETERS,
                "responses": {
                    "200": _json_ok("The statistics of the filter, in the caller's scope"),
                    "400": _error("A filter argument is not valid (or not available here)"),
                    "403": _error("The filter needs access to message details"),
                },
            }
        },
        "/api/v1/error-groups": {
            "get": {
                "operationId": "listErrorGroups",
                "summary": "Error groups in scope and filter, most frequent first",
                "parameters": STATS_PARAMETERS
                + [_query("limit", "How many groups.", {"type": "integer", "minimum": 1})],
                "responses": {
                    "200": _json_ok("The groups (`items`), the filter and the data source"),
                    "400": _error("A filter argument or limit is not valid"),
                    "403": _error("The filter needs access to message details"),
                },
            }
        },
    }


# ---- actions -------------------------------------------------------------------------------------
_MODE = _query(
    "mode",
    "acknowledge (default) or unacknowledge.",
    {"type": "string", "enum": ["acknowledge", "unacknowledge"], "default": "acknowledge"},
)
_THROUGH_ID = _query(
    THROUGH_ID,
    "Only messages up to this id (the preview's `through_id`); required by the POST.",
    {"type": "integer", "minimum": 0},
)
_EXPECTED = _query(
    "expected",
    "The preview's count, recorded in the audit row (bulk acknowledge: 409 when it differs).",
    {"type": "integer", "minimum": 0},
)
_SELECTED = _query(
    IDS,
    f"Only these message ids (repeat, or comma-separated; at most {MAX_SELECTED_IDS}), still "
    "ANDed with the filter, scope and grant.",
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": MAX_SELECTED_IDS},
    style="form",
    explode=True,
)
BULK_PARAMETERS = FILTER_PARAMETERS + [_SELECTED, _THROUGH_ID, _EXPECTED]
_BULK_BODY = {
    "required": False,
    "description": "The same arguments as a JSON object (an alternative to the query string).",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_DENIED = _error("The caller may not do this (no right, or re-ingest refused for the exchange)")
_NOT_FOUND = _error("Unknown message, or not in the caller's scope for this action")
_UNAUTHORIZED = _error("The bearer token is unknown, revoked, or its user is deactivated")

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


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _acknowledge(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": [_ID_PARAM],
            "responses": {
                "200": _json_ok("Done (audited)", _ref("AcknowledgeResult")),
                "401": _UNAUTHORIZED,
                "403": _DENIED,
                "404": _NOT_FOUND,
            },
        }
    }


def _action_paths() -> dict[str, Any]:
    return {
        "/api/v1/messages/{message_id}/acknowledge": _acknowledge(
            "acknowledgeMessage", "Acknowledge one message"
        ),
        "/api/v1/messages/{message_id}/unacknowledge": _acknowledge(
            "unacknowledgeMessage", "Withdraw the acknowledgement of one message"
        ),
        "/api/v1/messages/{message_id}/reingest": {
            "post": {
                "operationId": "reingestMessage",
                "summary": "Re-publish one message to its exchange (re-ingest allow-list, rate "
                "limit and size limit as on the page; always audited)",
                "parameters": [_ID_PARAM],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "payload": {
                                        "type": "string",
                                        "description": "Edited payload (default: the stored "
                                        "one); must be well-formed in the message's format",
                                    },
                                    "routing_key": {
                                        "type": "string",
                                        "description": "One seen on the exchange (default: "
                                        "the message's)",
                                    },
                                    "exchange": {
                                        "type": "string",
                                        "description": "Only for a report that recorded no "
                                        "exchange: one of the re-ingest allow-list",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json_ok("Published", _ref("ReingestResult")),
                    "400": _error("Bad payload or routing key (`field` names it)"),
                    "401": _UNAUTHORIZED,
                    "403": _DENIED,
                    "404": _NOT_FOUND,
                    "413": _error("The payload is larger than REPORT_MAX_BYTES"),
                    "429": _error("Rate limit: retry after the Retry-After seconds"),
                    "502": _json_ok("The broker refused or failed", _ref("ReingestResult")),
                },
            }
        },
        "/api/v1/actions/acknowledge": {
            "get": {
                "operationId": "previewBulkAcknowledge",
                "summary": "How many messages a bulk (un-)acknowledge would change, and the "
                "through_id bound to send with it",
                "parameters": [_MODE, *BULK_PARAMETERS],
                "responses": {
                    "200": _json_ok("The preview", _ref("BulkPreview")),
                    "400": _error("A filter argument is not valid"),
                    "403": _DENIED,
                },
            },
            "post": {
                "operationId": "bulkAcknowledge",
                "summary": "(Un-)acknowledge every message of the filter up to through_id",
                "parameters": [_MODE, *BULK_PARAMETERS],
                "requestBody": _BULK_BODY,
                "responses": {
                    "200": _json_ok("Done (audited)", _ref("BulkAcknowledgeResult")),
                    "400": _error("A filter argument is not valid, or through_id is missing"),
                    "401": _UNAUTHORIZED,
                    "403": _DENIED,
                    "409": _error("The count differs from `expected`: preview again"),
                },
            },
        },
        "/api/v1/actions/reingest": {
            "get": {
                "operationId": "previewBulkReingest",
                "summary": "How many messages a bulk re-ingest would publish (and which are "
                "refused by the allow-list), and the through_id bound",
                "parameters": BULK_PARAMETERS,
                "responses": {
                    "200": _json_ok("The preview", _ref("BulkPreview")),
                    "400": _error("A filter argument is not valid"),
                    "403": _DENIED,
                },
            },
            "post": {
                "operationId": "bulkReingest",
                "summary": "Start a bulk re-ingestion job (published at REINGEST_RATE_PER_SECOND)",
                "parameters": BULK_PARAMETERS,
                "requestBody": _BULK_BODY,
                "responses": {
                    "202": _json_ok("The job (`job_id`, `status_url`)", _ref("Job")),
                    "400": _error("A filter argument is not valid, or through_id is missing"),
                    "401": _UNAUTHORIZED,
                    "403": _DENIED,
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "Progress of a bulk re-ingestion job (its starter or an administrator)",
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    "200": _json_ok("The job", _ref("Job")),
                    "404": _error("Unknown job, or not the caller's"),
                },
            }
        },
    }
