"""The OpenAPI document describes every registered /api/v1 route and method, and documents
exactly the filter arguments the parsers read (so neither can drift from the code)."""

from __future__ import annotations

import dataclasses
import re

from werkzeug.datastructures import MultiDict

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
    from webapp.api.openapi import FILTER_PARAMETERS, STATS_PARAMETERS
    from webapp.messages.filters import MessageFilter
    from webapp.stats.filters import UNSUPPORTED

    documented = {p["name"] for p in FILTER_PARAMETERS}
    fields = {f.name for f in dataclasses.fields(MessageFilter)}
    # `types` is read from the repeatable `type`; *_text are how since/until were typed.
    read = (fields - {"types", "since_text", "until_text"}) | {"type"}
    assert documented == read
    assert {p["name"] for p in STATS_PARAMETERS} == (read - set(UNSUPPORTED)) | {"range"}


def test_documented_enum_values_parse(app):
    from webapp.api.openapi import FILTER_PARAMETERS, STATS_PARAMETERS
    from webapp.messages.filters import MessageFilter
    from webapp.stats.filters import StatsFilter

    for params, parse in ((FILTER_PARAMETERS, MessageFilter), (STATS_PARAMETERS, StatsFilter)):
        for param in params:
            for value in param["schema"].get("enum", []):
                parse.from_args(MultiDict({param["name"]: value}))
