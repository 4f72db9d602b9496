"""Shared fixtures: a fresh database on the real PostgreSQL started by scripts/test.sh, the app,
a client, a real Celery worker process, a live gunicorn server and a headless Chromium page.

The services come from the environment (`scripts/test.sh` sources `$RUN_DIR/env`). Each test
session uses its own database (`pd_test_<pid>`), created and migrated here, dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.processes import (
    Process,
    process_command,
    process_environ,
    serve,
    wait_for,
)

#: Fixtures every package shares (auth switches, factories, a query counter): tests/fixtures.py.
pytest_plugins = ("tests.fixtures",)

REQUIRED_ENV = ("POSTGRES_HOST", "POSTGRES_PORT", "RMQ_HOST", "RMQ_PORT")


def _require_services() -> None:
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        pytest.exit(
            f"service variables {', '.join(missing)} are not set: run the tests with `make test` "
            "(or `scripts/test.sh`), which starts PostgreSQL and RabbitMQ and exports them",
            returncode=4,
        )


#: Fixtures that need PostgreSQL, RabbitMQ or a browser (directly or through others).
SERVICE_FIXTURES = {"test_db_name", "app", "browser", "rmq"}


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs no service `unit` (`make test-fast` runs only those), and keep
    the explicit `unit` marker honest: a test marked so that needs a service fails here."""
    for item in items:
        needs_services = bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("unit") is not None and needs_services:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses a service fixture")
        needs_services = needs_services or item.get_closest_marker("services") is not None
        if not needs_services and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)


def admin_dsn(dbname: str = "postgres") -> str:
    return (
        f"host={os.environ['POSTGRES_HOST']} port={os.environ['POSTGRES_PORT']} "
        f"user={os.environ.get('POSTGRES_USER', 'pacer-dashboard')} "
        f"password={os.environ.get('POSTGRES_PASSWORD', '')} dbname={dbname}"
    )


@pytest.fixture(scope="session")
def test_db_name() -> Iterator[str]:
    """A fresh database for this session, migrated with `flask db upgrade` and partitioned."""
    _require_services()
    name = f"pd_test_{os.getpid()}"
    conn = psycopg2.connect(admin_dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    yield name
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def app(test_db_name):
    """The Flask app on the test database, migrated, with partitions."""
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.config import Settings

    settings = Settings.from_env(
        environ={**os.environ, "POSTGRES_DB": test_db_name},
        ENVIRONMENT="testing",
        DISABLED_AUTH=True,
    )
    app = create_app(settings)
    _session_celery[:] = [app.extensions["celery"]]
    with app.app_context():
        upgrade()
        from webapp.extensions import db
        from webapp.partitions.services import ensure_partitions

        with db.engine.begin() as conn:
            ensure_partitions(
                conn,
                months=settings.MESSAGE_PARTITION_MONTHS,
                ahead=settings.MESSAGE_PARTITIONS_AHEAD,
            )
    return app


#: Tables emptied between tests (partitions and the schema stay).
DATA_TABLES = (
    "messages",
    "report_receipts",
    "quarantined_reports",
    "message_stats",
    "error_groups",
    "error_group_stats",
    "heartbeats",
    "audit_log",
    "user_groups",
    "users",
    "groups",
    "investigation_checks",
)


_session_celery: list = []


@pytest.fixture(autouse=True)
def _session_celery_stays_current():
    """A test that builds a second app (create_app) makes that app's Celery the default one;
    tasks called by later tests must keep running against the session app and its database."""
    yield
    if _session_celery:
        _session_celery[0].set_current()
        _session_celery[0].set_default()


@pytest.fixture
def db(app):
    """The SQLAlchemy handle inside an app context; every data table is emptied after the test."""
    from webapp.extensions import db as _db

    with app.app_context():
        yield _db
        _db.session.rollback()
        _db.session.remove()
        truncate(app)


def truncate(app) -> None:
    from sqlalchemy import text

    from webapp.extensions import db as _db

    with app.app_context(), _db.engine.begin() as conn:
        existing = {
            r[0]
            for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
        }
        tables = [t for t in DATA_TABLES if t in existing or t == "messages"]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app, db):
    return app.test_client()


@pytest.fixture
def pg(app, db) -> Iterator[psycopg2.extensions.connection]:
    """A raw psycopg2 connection to the test database."""
    conn = psycopg2.connect(admin_dsn(app.extensions["settings"].POSTGRES_DB))
    yield conn
    conn.close()


@pytest.fixture
def settings(app):
    return app.extensions["settings"]


# Broker helpers ---------------------------------------------------------------------------------


@pytest.fixture
def unique_names() -> dict[str, str]:
    """Exchange/queue/routing key unique to one test so tests never read each other's reports."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "DASHBOARD_EXCHANGE": f"test-dashboard-{suffix}",
        "DASHBOARD_QUEUE": f"test-dashboard-logging-{suffix}",
        "DASHBOARD_ROUTING_KEY": "message.logging",
        "CELERY_QUEUE": f"test-tasks-{suffix}",
    }


@pytest.fixture
def broker_url(settings) -> str:
    return settings.broker_url


# Processes --------------------------------------------------------------------------------------


@pytest.fixture
def start_worker(test_db_name, tmp_path):
    """Factory: start a real `celery -A wsgi.celery_app worker` on the test database."""
    started: list[Process] = []

    def start(name: str = "worker", wait: bool = True, **env_extra: str) -> Process:
        env = process_environ(
            test_db_name,
            WORKER_NAME=f"{name}-{uuid.uuid4().hex[:6]}@%h",
            LOG_LEVEL="INFO",
            RUN_DIR=str(tmp_path / "run"),
            **env_extra,
        )
        proc = Process(process_command("worker"), env, tmp_path / f"{name}.log").start()
        started.append(proc)
        if wait:
            wait_for(
                lambda: "consuming reports" in proc.output() or not proc.alive,
                60,
                f"worker {name} to start",
            )
            assert proc.alive, proc.output()[-3000:]
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def start_beat(test_db_name, tmp_path):
    """Factory: a real beat (`python -m webapp.processes beat`) on the test database."""
    started: list[Process] = []

    def start(**env_extra: str) -> Process:
        env = process_environ(
            test_db_name, LOG_LEVEL="INFO", RUN_DIR=str(tmp_path / "beat-run"), **env_extra
        )
        proc = Process(process_command("beat"), env, tmp_path / "beat.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def live_server(test_db_name, tmp_path, db):
    """Factory: a real gunicorn (gthread) serving the app on the test database; returns its URL."""
    started: list[Process] = []

    def start(workers: int = 1, **env_extra: str) -> str:
        env = process_environ(
            test_db_name, SECRET_KEY="test-secret-" + uuid.uuid4().hex, **env_extra
        )
        env.setdefault("RUN_DIR", str(tmp_path / "run"))
        env["WEB_WORKERS"] = str(workers)
        proc = serve("web", env, tmp_path / "gunicorn-{port}.log")
        started.append(proc)
        return f"http://127.0.0.1:{proc.port}"

    yield start
    for proc in started:
        proc.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless system Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.fail(f"Chromium not found at {chromium}: `make test` installs it (apt chromium)")
    home = tmp_path_factory.mktemp("browser-home")
    os.environ.setdefault("XDG_CONFIG_HOME", str(home))
    os.environ.setdefault("XDG_CACHE_HOME", str(home))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh browser context/page; console errors are collected on `page.console_errors`."""
    context = browser.new_context()
    pg_ = context.new_page()
    errors: list[str] = []
    pg_.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg_.on("pageerror", lambda e: errors.append(str(e)))
    pg_.console_errors = errors
    yield pg_
    context.close()
