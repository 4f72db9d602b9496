"""The OpenAPI document is generated from the routes (webapp/apidoc.py): it describes every
registered /api/v1 route and method, a route without its `@api_doc` declaration is an error (at
app start-up in tests, and when the document is built), path parameters come from the rule's
converters, and the documented filter arguments are exactly those the parsers read (so neither
can drift from the code)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from flask import Blueprint, Flask
from werkzeug.datastructures import MultiDict

from webapp.apidoc import UndocumentedRoute, api_doc, check_documented, json_ok, paths, query

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def openapi_path(rule: str) -> str:
    """Werkzeug `/api/v1/messages/<int:message_id>` -> OpenAPI `/api/v1/messages/{message_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_and_method_is_documented(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    routes = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
        for method in rule.methods - IGNORED_METHODS
    }
    assert len(routes) >= 15
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert routes - documented == set(), "routes missing from openapi.json"
    assert documented - routes == set(), "openapi.json describes routes that do not exist"
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_documented_filter_arguments_are_the_parsers():
    from webapp.api.openapi import FILTER_PARAMETERS
    from webapp.messages.filters import MessageFilter
    from webapp.stats.filters import UNSUPPORTED
    from webapp.stats.openapi import STATS_PARAMETERS

    documented = {p["name"] for p in FILTER_PARAMETERS}
    fields = {f.name for f in dataclasses.fields(MessageFilter)}
    # `types` is read from the repeatable `type`; *_text are how since/until were typed.
    read = (fields - {"types", "since_text", "until_text"}) | {"type"}
    assert documented == read
    assert {p["name"] for p in STATS_PARAMETERS} == (read - set(UNSUPPORTED)) | {"range"}


def test_documented_enum_values_parse(app):
    from webapp.api.openapi import FILTER_PARAMETERS
    from webapp.messages.filters import MessageFilter
    from webapp.stats.filters import StatsFilter
    from webapp.stats.openapi import STATS_PARAMETERS

    for params, parse in ((FILTER_PARAMETERS, MessageFilter), (STATS_PARAMETERS, StatsFilter)):
        for param in params:
            for value in param["schema"].get("enum", []):
                parse.from_args(MultiDict({param["name"]: value}))


#: The operations of the API's contract (DESIGN.md): their paths, methods and operationIds stay.
CONTRACT_OPERATIONS = {
    ("/api/v1/messages", "get"): "listMessages",
    ("/api/v1/messages/{message_id}", "get"): "getMessage",
    ("/api/v1/messages/{message_id}/trace", "get"): "traceMessage",
    ("/api/v1/docs", "get"): "docs",
    ("/api/v1/openapi.json", "get"): "openapi",
    ("/api/v1/stats", "get"): "getStats",
    ("/api/v1/error-groups", "get"): "listErrorGroups",
    ("/api/v1/stalled", "get"): "listStalledRuns",
    ("/api/v1/messages/{message_id}/acknowledge", "post"): "acknowledgeMessage",
    ("/api/v1/messages/{message_id}/unacknowledge", "post"): "unacknowledgeMessage",
    ("/api/v1/messages/{message_id}/reingest", "post"): "reingestMessage",
    ("/api/v1/actions/acknowledge", "get"): "previewBulkAcknowledge",
    ("/api/v1/actions/acknowledge", "post"): "bulkAcknowledge",
    ("/api/v1/actions/reingest", "get"): "previewBulkReingest",
    ("/api/v1/actions/reingest", "post"): "bulkReingest",
    ("/api/v1/jobs/{job_id}", "get"): "getJob",
}


def test_generated_document_keeps_the_contract(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operations = {
        (path, method): op["operationId"]
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }
    assert {k: operations.get(k) for k in CONTRACT_OPERATIONS} == CONTRACT_OPERATIONS
    message = document["paths"]["/api/v1/messages/{message_id}/reingest"]["post"]
    assert message["parameters"] == [
        {
            "name": "message_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    ]
    assert set(message["responses"]) == {"200", "400", "401", "403", "404", "413", "429", "502"}
    assert (
        "payload" in message["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    listing = document["paths"]["/api/v1/messages"]["get"]
    assert [p["name"] for p in listing["parameters"]][-3:] == ["cursor", "limit", "format"]
    assert set(document["components"]["schemas"]) >= {
        "MessageSummary",
        "Message",
        "MessagePage",
        "Trace",
        "Error",
        "AcknowledgeResult",
        "ReingestResult",
        "BulkPreview",
        "BulkAcknowledgeResult",
        "Job",
    }
    assert document["security"] == [{"token": []}, {"session": []}, {}]
    # Every $ref points at a declared schema.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(document["components"]["schemas"])


def _app_with(*routes):
    """A bare Flask app whose /api/v1 blueprint has `routes` (rule, methods, view)."""
    app = Flask(__name__)
    bp = Blueprint("t", __name__, url_prefix="/api/v1")
    for rule, methods, view in routes:
        bp.add_url_rule(rule, view.__name__, view, methods=methods)
    app.register_blueprint(bp)
    return app


def _ok(**kwargs):
    return api_doc(responses={"200": json_ok("ok")}, **kwargs)


def test_a_route_without_declaration_is_an_error():
    @_ok(operation_id="documented", summary="Documented")
    def documented():
        return ""

    def undocumented():
        return ""

    @_ok(method="GET", operation_id="half", summary="Only GET")
    def half():
        return ""

    check_documented(_app_with(("/fine", ["GET"], documented)))
    app = _app_with(("/fine", ["GET"], documented), ("/forgotten", ["GET"], undocumented))
    with pytest.raises(UndocumentedRoute, match=r"GET /api/v1/forgotten \(t.undocumented\)"):
        check_documented(app)
    with pytest.raises(UndocumentedRoute, match=r"POST /api/v1/half"):
        check_documented(_app_with(("/half", ["GET", "POST"], half)))
    # A declaration for a method the rule does not answer is stale, not silently dropped.
    with pytest.raises(UndocumentedRoute, match=r"does not answer"):
        check_documented(_app_with(("/half", ["POST"], half)))
    # Routes outside /api/v1 need none.
    outside = Flask(__name__)
    outside.add_url_rule("/page", "page", undocumented)
    check_documented(outside)


def test_app_start_up_refuses_an_undocumented_api_route(settings, monkeypatch):
    import webapp

    register = webapp._register_blueprints

    def with_forgotten_route(app):
        register(app)
        app.add_url_rule("/api/v1/forgotten", "forgotten", lambda: "")

    monkeypatch.setattr(webapp, "_register_blueprints", with_forgotten_route)
    with pytest.raises(UndocumentedRoute, match="/api/v1/forgotten"):
        webapp.create_app(settings)


def test_path_parameters_and_methods_come_from_the_rule():
    @_ok(
        operation_id="thing",
        summary="A thing",
        parameters=[
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "Its name",
                "schema": {"type": "string", "maxLength": 9},
            },
            query("q", "Text.", {"type": "string"}),
        ],
    )
    def thing(**kwargs):
        return ""

    app = _app_with(
        ("/things/<int:thing_id>/<int(min=5, max=9):n>/<uuid:u>/<name>", ["POST", "GET"], thing)
    )
    item = paths(app.url_map, app.view_functions)
    assert list(item) == ["/api/v1/things/{thing_id}/{n}/{u}/{name}"]
    operations = item["/api/v1/things/{thing_id}/{n}/{u}/{name}"]
    assert list(operations) == ["get", "post"]
    assert operations["get"]["parameters"] == [
        {
            "name": "thing_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
        {
            "name": "n",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 5, "maximum": 9},
        },
        {
            "name": "u",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        },
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "Its name",
            "schema": {"type": "string", "maxLength": 9},
        },
        query("q", "Text.", {"type": "string"}),
    ]
    assert operations["get"]["operationId"] == "thing"

    @_ok(
        operation_id="bad",
        summary="Bad",
        parameters=[{"name": "nope", "in": "path", "required": True, "schema": {"type": "string"}}],
    )
    def bad(**kwargs):
        return ""

    with pytest.raises(UndocumentedRoute, match="nope"):
        check_documented(_app_with(("/bad/<x>", ["GET"], bad)))
