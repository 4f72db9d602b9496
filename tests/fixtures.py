"""Fixtures every test package may use, registered once as a pytest plugin (`pytest_plugins` in
tests/conftest.py): settings switches, factory fixtures over tests/factories.py, a query counter.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from datetime import datetime

import pytest
from sqlalchemy import event

from tests import factories
from tests.auth.support import ADMIN_GROUP


@pytest.fixture
def auth_enabled(app):
    """The session app with DISABLED_AUTH=false (restored after the test)."""
    original = app.extensions["settings"]
    app.extensions["settings"] = dataclasses.replace(
        original,
        DISABLED_AUTH=False,
        SSO_SERVER_URL="https://sso.example.org/realms/facility",
        SSO_CLIENT_ID="pacer-dashboard",
        SSO_CLIENT_SECRET="not-used-in-these-tests",
        ADMIN_GROUP=ADMIN_GROUP,
    )
    yield app.extensions["settings"]
    app.extensions["settings"] = original


@pytest.fixture
def reingest_allowed(app):
    """Factory: allow re-ingest to these exchanges (REINGEST_EXCHANGES) for this test, published
    as the main broker user (a test's own exchanges are outside the re-ingest broker user's
    write permission). The settings are restored after the test."""
    original = app.extensions["settings"]

    def allow(*exchanges: str):
        app.extensions["settings"] = dataclasses.replace(
            app.extensions["settings"],
            REINGEST_EXCHANGES=tuple(exchanges),
            REINGEST_RMQ_USERNAME="",
            REINGEST_RMQ_PASSWORD="",
        )
        return app.extensions["settings"]

    yield allow
    app.extensions["settings"] = original


@pytest.fixture
def make_group(db):
    """Factory: make_group(name, **fields) -> a committed Group (factories.new_group)."""
    return lambda name, **fields: factories.new_group(db.session, name, **fields)


@pytest.fixture
def make_user(db):
    """Factory: make_user(sub, groups=(), **fields) -> a committed User (factories.new_user)."""
    return lambda sub, groups=(), **fields: factories.new_user(db.session, sub, groups, **fields)


@pytest.fixture
def seeded(app, db) -> factories.Seeded:
    """Five errored messages written by the real ingestion writer (rollups, error groups too)."""
    return factories.seed_messages(app, db)


@pytest.fixture
def write_reports(pg, settings):
    """Factory: write_reports(body, body, ..., now=datetime) -> message ids in order."""

    def _write(*bodies: bytes, now: datetime | None = None) -> list[int]:
        return factories.write(pg, settings, bodies, now=now)

    return _write


@pytest.fixture
def count_queries(db):
    """Context manager factory counting SQL statements sent through the app's engine."""

    @contextmanager
    def _count():
        statements: list[str] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return _count
