"""The OpenAPI 3.1 document of `/api/v1` (hand-written: the API is small and stable)."""

from __future__ import annotations

from typing import Any

from ..messages.filters import ACKNOWLEDGED, MIN_HASH_PREFIX, PAYLOAD_FORMATS, STATUSES
from ..messages.queries import MAX_LIMIT


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
    _query("instrument", "Instrument, case-insensitive.", _TEXT),
    _query("investigation", "Investigation (exact).", _TEXT),
    _query("dataset", "Dataset name (exact).", _TEXT),
    _query("dataset_id", "ICAT dataset id (exact).", _TEXT),
    _query("visit_id", "Visit id (exact).", _TEXT),
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
        "instrument": _NULLABLE_TEXT,
        "investigation": _NULLABLE_TEXT,
        "dataset": _NULLABLE_TEXT,
        "dataset_id": _NULLABLE_TEXT,
        "visit_id": _NULLABLE_TEXT,
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PACER Dashboard API",
            "version": "1",
            "description": "Messages processed by PACER, filtered and scoped like the pages. "
            "Authentication is the dashboard session (cookie); without details access, "
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
