"""PACER Dashboard web application: `create_app` builds everything, nothing happens at import."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from .config import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, overrides: Mapping[str, Any] | None = None
) -> Flask:
    """Build the Flask app (and its bound Celery app) from validated settings."""
    if settings is None:
        from dotenv import load_dotenv

        load_dotenv(override=False)
        settings = Settings.from_env()

    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="static",
    )
    secret_key = settings.SECRET_KEY
    if not secret_key:
        # Only reachable in development/testing (Settings.validate refuses it in production).
        logger.warning("SECRET_KEY is not set: using a random key, sessions end on restart")
        secret_key = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": True,
            "pool_size": 10,
            "max_overflow": 20,
            "connect_args": {"application_name": "pacer-dashboard", "connect_timeout": 5},
        },
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.SESSION_COOKIE_SECURE,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        JSON_SORT_KEYS=False,
        TESTING=settings.ENVIRONMENT == "testing",
    )
    app.config.update(settings.overrides)
    if overrides:
        app.config.update(overrides)
    app.extensions["settings"] = settings
    if settings.TRUSTED_PROXIES:
        # Behind an HTTPS reverse proxy: take scheme/host/client from X-Forwarded-* so the OIDC
        # callback URL and secure cookies are right.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    from .extensions import db, migrate, sock

    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), compare_type=True)
    sock.init_app(app)

    from . import errors

    errors.init_app(app)

    _register_blueprints(app)
    if app.testing:
        # An /api/v1 route without its @api_doc fails every test, not only the document's.
        from .apidoc import check_documented

        check_documented(app)
    _register_cli(app)

    from .celery_app import celery_init_app

    celery_init_app(app)
    return app


def get_settings() -> Settings:
    """Settings of the current app."""
    return current_app.extensions["settings"]


def _migrations_dir() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "migrations")


def _register_blueprints(app: Flask) -> None:
    from importlib import import_module

    # One package per area, each exposing `bp`; the order only matters for URL precedence.
    for area in (
        "health",
        "messages",
        "api",
        "live",
        "auth",
        "admin",
        "errors_view",
        "stats",
        "stalled",
        "investigations",
        "alerts",
        "actions",
        "system",
    ):
        app.register_blueprint(import_module(f".{area}", __name__).bp)


def _register_cli(app: Flask) -> None:
    from .cli import register

    register(app)
