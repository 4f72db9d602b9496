"""Error responses: HTML for browsers, JSON for the API; a bad input is a 4xx with a reason.

Views raise `BadRequest`-style `DomainError`s (or werkzeug HTTPExceptions); nothing a user types may
end in a 500. Report data inside error messages is escaped by the template like everywhere else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Flask, jsonify, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DomainError(Exception):
    """An error with a user-facing message and an HTTP status (default 400)."""

    status = 400

    def __init__(self, message: str, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status


class InvalidFilter(DomainError):
    """A filter value that cannot be used (bad date, unknown status, ...)."""


def wants_json() -> bool:
    """True for API paths and clients that prefer JSON."""
    if request.path.startswith("/api/") or request.path in {"/healthz"}:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, title: str, message: str, field: str | None = None):
    if wants_json():
        body = {"error": title, "message": message, "status": status}
        if field:
            body["field"] = field
        return jsonify(body), status
    return (
        render_template(
            "error.html",
            status=status,
            title=title,
            message=message,
            field=field,
            retry_url=_retry_url(field),
        ),
        status,
    )


def keep_audit_on_error(view):
    """Refusals are audited: on a DomainError commit the session (its audit row), then answer."""
    from .extensions import db

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except DomainError:
            db.session.commit()
            raise

    return wrapper


def parse_keeping_input(parse: Callable[[Any], T], args: Any) -> tuple[T, dict[str, str]]:
    """`parse(args)`, refusing only the arguments it names: (result, {field: message}).

    A page that shows its filter form calls this instead of letting a bad value end in the
    whole-page error: each argument the parser refuses (a DomainError with `field`) is left out
    and the rest parsed again, so the page renders its results for what was usable, marks the
    refused fields next to the inputs and keeps everything the user typed. An error without a
    field (or naming an argument that was not given) is raised as before; JSON callers too.
    """
    remaining = MultiDict(args)
    refused: dict[str, str] = {}
    while True:
        try:
            return parse(remaining), refused
        except DomainError as exc:
            if wants_json() or not exc.field or exc.field not in remaining:
                raise
            refused[exc.field] = exc.message
            remaining.poplist(exc.field)


def _retry_url(field: str | None) -> str | None:
    """This page again without the argument that was refused: the user's other input is kept."""
    if not field or request.method != "GET" or field not in request.args:
        return None
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != field])
    return request.path + (f"?{query}" if query else "")


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        return error_response(exc.status, _title(exc.status), exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = error_response(exc.code or 500, exc.name, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            resp, status = response
            resp = app.make_response((resp, status))
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
            return resp
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            500, "Internal Server Error", "Something went wrong on our side; it has been logged."
        )


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
