"""Alert fixtures: a real SMTP server (aiosmtpd) and a real HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.processes import free_port


class _Collect:
    def __init__(self):
        self.mails: list[EmailMessage] = []
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        raw = envelope.original_content or envelope.content
        self.mails.append(message_from_bytes(raw, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (an OS-picked port); `.mails` holds what it received."""
    from aiosmtpd.controller import Controller

    handler = _Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.host, handler.port = controller.hostname, controller.port
    handler.settings = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "SMTP_STARTTLS": "false",
        "ALERT_MAIL_FROM": "pacer-dashboard@example.org",
    }
    yield handler
    controller.stop()


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's hook name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.server.status == 200:
            self.server.bodies.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_receiver():
    """A real HTTP server on port 0 recording the JSON bodies POSTed to it (`.bodies`)."""
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_settings(settings, smtp_server):
    """The session settings with SMTP pointing at the test server."""
    import dataclasses

    return dataclasses.replace(
        settings,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port,
        SMTP_STARTTLS=False,
        ALERT_MAIL_FROM="pacer-dashboard@example.org",
        PUBLIC_URL="https://dashboard.example.org",
    )


@pytest.fixture(autouse=True)
def _empty_alert_tables(app):
    """Rules (and with them incidents and deliveries) are emptied after each test."""
    yield
    from sqlalchemy import text

    from webapp.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE alert_rules RESTART IDENTITY CASCADE"))
