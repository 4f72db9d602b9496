"""How an /api/v1 view documents itself: `@api_doc(...)` next to the route, and the OpenAPI paths
generated from the URL map (webapp/api/openapi.py adds the shared schemas around them).

    @bp.get("/messages/<int:message_id>")
    @api_doc(operation_id="getMessage", summary="One message", responses={...})
    def get_message(message_id): ...

The path (`/api/v1/messages/{message_id}`), its methods and its path parameters come from the
rule itself (an `int` converter is an integer parameter); the view declares the rest. A view
answering several methods declares each (`method="GET"`, `method="POST"`). An /api/v1 rule whose
view declares nothing for one of its methods is an error (`UndocumentedRoute`), raised when the
document is built and, in tests, when the app starts (`check_documented`): a new route cannot
silently be missing from the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from werkzeug.routing import FloatConverter, Map, Rule, UUIDConverter
from werkzeug.routing.converters import NumberConverter

API_PREFIX = "/api/v1"
#: Methods Flask answers by itself (HEAD from GET, OPTIONS): not documented.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
#: Order of the operations within a path in the document.
METHOD_ORDER = ("get", "put", "post", "patch", "delete")
#: The view attribute holding its declarations: {method or ALL_METHODS: operation}.
ATTRIBUTE = "__api_doc__"
ALL_METHODS = "*"
#: An unsigned `int` path variable here is a database id (a serial, from 1): 0 routes but never
#: names anything, so the document says minimum 1 unless the converter has its own `min`.
ID_MINIMUM = 1

F = TypeVar("F", bound=Callable[..., Any])


class UndocumentedRoute(RuntimeError):
    """An /api/v1 rule (or one of its methods) whose view has no `@api_doc` declaration."""


# ---- declaring -----------------------------------------------------------------------------------
def api_doc(
    *,
    operation_id: str,
    summary: str,
    responses: Mapping[str, dict[str, Any]],
    parameters: Sequence[dict[str, Any]] = (),
    request_body: dict[str, Any] | None = None,
    description: str | None = None,
    method: str | None = None,
) -> Callable[[F], F]:
    """Declare the OpenAPI operation of a view (for `method` only, or every method of its rule).

    `parameters` are the query parameters (and, to describe one further, a path parameter of the
    same name as a rule variable); the rule's own variables are added first."""
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if description:
        operation["description"] = description
    operation["parameters"] = list(parameters)
    if request_body is not None:
        operation["requestBody"] = request_body
    operation["responses"] = dict(responses)
    key = method.lower() if method else ALL_METHODS

    def decorate(view: F) -> F:
        declared = view.__dict__.setdefault(ATTRIBUTE, {})
        if key in declared:
            raise TypeError(f"{view.__qualname__}: @api_doc declared twice for {key}")
        declared[key] = operation
        return view

    return decorate


def query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


def ref(name: str) -> dict[str, Any]:
    """A reference to a schema of `components.schemas`."""
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str) -> dict[str, Any]:
    """A response carrying the JSON error body (`components.schemas.Error`)."""
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def json_ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON response (any object unless a schema is given)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


# ---- generating ----------------------------------------------------------------------------------
def api_rules(url_map: Map) -> list[Rule]:
    """The /api/v1 rules, in registration order."""
    return [
        rule
        for rule in url_map.iter_rules()
        if rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/")
    ]


def openapi_path(rule: Rule) -> str:
    """`/api/v1/messages/<int:message_id>` -> `/api/v1/messages/{message_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def paths(url_map: Map, view_functions: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """The OpenAPI `paths` of every /api/v1 rule, from its rule and its view's declarations;
    `UndocumentedRoute` for a rule or method without one."""
    document: dict[str, dict[str, Any]] = {}
    for rule in api_rules(url_map):
        declared = getattr(view_functions[rule.endpoint], ATTRIBUTE, {})
        methods = _methods(rule)
        stale = set(declared) - set(methods) - {ALL_METHODS}
        if stale:
            raise UndocumentedRoute(
                f"{rule.rule} ({rule.endpoint}): @api_doc for {sorted(stale)}, "
                f"which the rule does not answer"
            )
        item = document.setdefault(openapi_path(rule), {})
        for method in methods:
            operation = declared.get(method) or declared.get(ALL_METHODS)
            if operation is None:
                raise UndocumentedRoute(
                    f"{method.upper()} {rule.rule} ({rule.endpoint}) has no @api_doc "
                    f"declaration (webapp/apidoc.py): every /api/v1 route is documented"
                )
            if method in item:
                raise UndocumentedRoute(f"{method.upper()} {rule.rule}: described twice")
            item[method] = _operation(rule, operation)
    return document


def check_documented(app: Any) -> None:
    """Raise `UndocumentedRoute` unless every /api/v1 route of `app` is documented."""
    paths(app.url_map, app.view_functions)


def _methods(rule: Rule) -> list[str]:
    methods = {m.lower() for m in (rule.methods or ()) if m not in IMPLICIT_METHODS}
    return sorted(methods, key=lambda m: (METHOD_ORDER + (m,)).index(m))


def _operation(rule: Rule, declared: dict[str, Any]) -> dict[str, Any]:
    variables = rule._converters  # noqa: SLF001 - werkzeug keeps the bound converters only here
    described = {p["name"]: p for p in declared["parameters"] if p.get("in") == "path"}
    unknown = set(described) - set(variables)
    if unknown:
        raise UndocumentedRoute(f"{rule.rule}: path parameters {sorted(unknown)} not in the rule")
    parameters = [
        described.get(name) or path_parameter(name, converter)
        for name, converter in variables.items()
    ]
    parameters += [p for p in declared["parameters"] if p.get("in") != "path"]
    operation = {k: declared[k] for k in ("operationId", "summary", "description") if k in declared}
    if parameters:
        operation["parameters"] = parameters
    operation.update({k: declared[k] for k in ("requestBody", "responses") if k in declared})
    return operation


def path_parameter(name: str, converter: Any) -> dict[str, Any]:
    """A rule variable as an OpenAPI path parameter, its schema from the converter."""
    return {"name": name, "in": "path", "required": True, "schema": _schema(converter)}


def _schema(converter: Any) -> dict[str, Any]:
    if isinstance(converter, NumberConverter):
        schema: dict[str, Any] = {
            "type": "number" if isinstance(converter, FloatConverter) else "integer"
        }
        if converter.min is not None:
            schema["minimum"] = converter.min
        elif not converter.signed:
            schema["minimum"] = ID_MINIMUM if schema["type"] == "integer" else 0
        if converter.max is not None:
            schema["maximum"] = converter.max
        return schema
    if isinstance(converter, UUIDConverter):
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}
