"""Configuration: every variable typed and validated at startup, one clear line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from webapp.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
BASE = {"RMQ_HOST": "localhost", "DISABLED_AUTH": "true", "ENVIRONMENT": "development"}


def settings(**env: str) -> Settings:
    return Settings.from_env(environ={**BASE, **env})


def test_defaults_follow_the_design():
    s = settings()
    assert (s.POSTGRES_DB, s.POSTGRES_USER, s.POSTGRES_HOST, s.POSTGRES_PORT) == (
        "pacer-dashboard",
        "pacer-dashboard",
        "localhost",
        5432,
    )
    assert (s.RMQ_PROTOCOL, s.RMQ_PORT, s.RMQ_USERNAME, s.RMQ_VHOST) == (
        "amqp",
        5672,
        "pacer-dashboard",
        "/",
    )
    assert s.ICAT_AUTH_PLUGIN == "db"
    assert s.MESSAGE_PARTITION_MONTHS == 6
    assert s.MESSAGE_PARTITIONS_AHEAD == 2
    assert s.MESSAGE_RETENTION_MONTHS is None
    assert (s.INGEST_BATCH_SIZE, s.INGEST_FLUSH_MS) == (500, 200)
    assert s.ingest_prefetch > s.INGEST_BATCH_SIZE
    assert s.DEDUPE_WINDOW_DAYS == 14
    assert s.INVESTIGATION_CHECK_WINDOW_DAYS == 30
    assert s.INDUSTRIAL_INVESTIGATION_TYPES == ("INDUSTRIAL",)
    assert (s.DASHBOARD_EXCHANGE, s.DASHBOARD_QUEUE, s.DASHBOARD_ROUTING_KEY) == (
        "dashboard-logging-exchange",
        "dashboard-logging",
        "message.logging",
    )
    assert (s.INVESTIGATION_OPS_EXCHANGE, s.INVESTIGATION_OPS_ROUTING_KEY) == (
        "investigation-ops-exchange",
        "investigation.ops",
    )
    assert s.PACER_TIMEZONE == "UTC"
    assert s.ADMIN_GROUP == "Administrator"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RMQ_PORT": "abc"}, "RMQ_PORT"),
        ({"RMQ_PORT": "70000"}, "RMQ_PORT"),
        ({"POSTGRES_PORT": "5432x"}, "POSTGRES_PORT"),
        ({"DISABLED_AUTH": "maybe"}, "DISABLED_AUTH"),
        ({"DISABLED_AUTH": ""}, "DISABLED_AUTH"),
        ({"ENVIRONMENT": "production", "SECRET_KEY": ""}, "SECRET_KEY"),
        ({"RMQ_HOST": ""}, "RMQ_HOST"),
        ({"RMQ_PROTOCOL": "http"}, "RMQ_PROTOCOL"),
        ({"DISABLED_AUTH": "false"}, "SSO_SERVER_URL"),
        ({"MESSAGE_PARTITION_MONTHS": "5"}, "MESSAGE_PARTITION_MONTHS"),
        ({"MESSAGE_PARTITIONS_AHEAD": "-1"}, "MESSAGE_PARTITIONS_AHEAD"),
        ({"MESSAGE_RETENTION_MONTHS": "zero"}, "MESSAGE_RETENTION_MONTHS"),
        ({"INGEST_BATCH_SIZE": "0"}, "INGEST_BATCH_SIZE"),
        ({"INGEST_PREFETCH": "10"}, "INGEST_PREFETCH"),
        ({"PACER_TIMEZONE": "Mars/Olympus"}, "PACER_TIMEZONE"),
        ({"INVESTIGATION_CHECKS_CRON": "daily"}, "INVESTIGATION_CHECKS_CRON"),
        ({"PARTITIONS_CRON": "0 99 * * *"}, "PARTITIONS_CRON"),
        ({"PANOSC_API_URL": "ftp://x"}, "PANOSC_API_URL"),
        ({"SESSION_COOKIE_SECURE": "sometimes"}, "SESSION_COOKIE_SECURE"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as exc:
        settings(**env)
    assert str(exc.value).startswith(f"{variable}:")


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "on", "On"])
def test_strict_booleans_true(word):
    assert settings(DISABLED_AUTH=word).DISABLED_AUTH is True


@pytest.mark.parametrize("word", ["false", "0", "no", "off", "False"])
def test_strict_booleans_false(word):
    s = settings(
        DISABLED_AUTH=word,
        SSO_SERVER_URL="https://sso.example.org/realms/x",
        SSO_CLIENT_ID="dash",
        SSO_CLIENT_SECRET="secret",
    )
    assert s.DISABLED_AUTH is False


def test_production_requires_secret_key_and_accepts_one():
    with pytest.raises(ConfigError, match="^SECRET_KEY:"):
        settings(ENVIRONMENT="production")
    key = "3f9a1c0b7e6d5a4f2b8c9d0e1f2a3b4c"
    assert settings(ENVIRONMENT="production", SECRET_KEY=key).SECRET_KEY == key


@pytest.mark.parametrize("key", [" ", "a", "k" * 64, "secret", "0123456789" * 2, " " * 40])
def test_production_refuses_a_weak_secret_key(key):
    with pytest.raises(ConfigError, match="^SECRET_KEY: too weak for production"):
        settings(ENVIRONMENT="production", SECRET_KEY=key)


def test_development_accepts_any_secret_key():
    assert settings(ENVIRONMENT="development", SECRET_KEY="a").SECRET_KEY == "a"


def test_password_with_url_special_characters_is_quoted_fully():
    s = settings(RMQ_PASSWORD="a/b@c:d%e f", RMQ_USERNAME="us@r", RMQ_VHOST="/")
    assert s.broker_url == "pyamqp://us%40r:a%2Fb%40c%3Ad%25e%20f@localhost:5672/%2F"
    conn = Connection(s.broker_url)
    assert conn.userid == "us@r"
    assert conn.password == "a/b@c:d%e f"
    assert conn.virtual_host == "/"


def test_amqps_uses_tls():
    s = settings(RMQ_PROTOCOL="amqps", RMQ_PORT="5671")
    assert s.broker_url.startswith("amqps://")
    assert s.broker_use_ssl


@pytest.mark.services
def test_real_broker_accepts_the_special_password():
    """The test broker's password is `pa/ss@w:rd%local` (scripts/services.sh)."""
    s = Settings.from_env(environ={**os.environ, "DISABLED_AUTH": "true", "ENVIRONMENT": "testing"})
    assert any(c in s.RMQ_PASSWORD for c in "/@:%")
    with Connection(s.broker_url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"RMQ_PORT": "abc"}, "RMQ_PORT"), ({"DISABLED_AUTH": "maybe"}, "DISABLED_AUTH")],
)
def test_processes_stop_with_one_line_naming_the_variable(env, variable):
    full = {**os.environ, **BASE, **env}
    for command in (
        [sys.executable, "-c", "import wsgi"],
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "partitions", "list"],
    ):
        proc = subprocess.run(  # noqa: S603
            command, env=full, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith(f"pacer-dashboard: configuration error: {variable}:"), (
            proc.stderr
        )
        assert "Traceback" not in proc.stderr


def test_import_has_no_side_effects():
    """Importing the packages opens no connection and builds no app."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "import webapp, webapp.config, models, tasks.ingest, tasks.partitions, celeryconfig\n"
        "print('ok')\n"
    )
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == "ok", proc.stderr


def test_trusted_proxies_enable_proxy_fix(app):
    from werkzeug.middleware.proxy_fix import ProxyFix

    from webapp import create_app

    s = Settings.from_env(
        environ={**os.environ, **BASE, "TRUSTED_PROXIES": "1", "ENVIRONMENT": "testing"}
    )
    proxied = create_app(s)
    assert isinstance(proxied.wsgi_app, ProxyFix)
    seen = {}

    @proxied.get("/_proxy_probe")
    def probe():
        from flask import request, url_for

        seen["url"] = url_for("probe", _external=True)
        seen["remote"] = request.remote_addr
        return ""

    proxied.test_client().get(
        "/_proxy_probe",
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "dash.example.org",
            "X-Forwarded-For": "10.1.2.3",
        },
    )
    assert seen == {"url": "https://dash.example.org/_proxy_probe", "remote": "10.1.2.3"}
    assert not isinstance(app.wsgi_app, ProxyFix)  # off by default
