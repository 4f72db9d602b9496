"""Fixtures for the investigation checks: a fake ICAT gateway, a real HTTP server playing the
PaNOSC search API, and a real RabbitMQ exchange + queue capturing what is published to PACER."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from kombu import Connection, Exchange, Queue

from webapp.investigations.gateway import GATEWAY_FACTORY_KEY, IcatInvestigation, IcatUnavailable

#: The clock of the tests: checks run "now", end dates are relative to it.
NOW = datetime(2026, 5, 10, 4, 30, tzinfo=UTC)


def investigation(
    name: str, *, days_ago: float = 2, doi: str | None = None, visit_id="1", type_name="EXPERIMENT"
):
    return IcatInvestigation(
        name=name,
        visit_id=visit_id,
        doi=doi,
        end_date=NOW - timedelta(days=days_ago),
        type_name=type_name,
    )


class FakeIcat:
    """Plays ICAT faithfully: the window and the type exclusion are applied like the real query."""

    def __init__(self):
        self.investigations: dict[tuple[str, str], IcatInvestigation] = {}
        self.calls: list[tuple] = []
        self.failures_left = 0
        self.closed = 0

    def add(self, *invs: IcatInvestigation) -> None:
        for inv in invs:
            self.investigations[(inv.name, inv.visit_id)] = inv

    def set_doi(self, name: str, doi: str, visit_id: str = "1") -> None:
        key = (name, visit_id)
        self.investigations[key] = dataclasses.replace(self.investigations[key], doi=doi)

    def _maybe_fail(self):
        if self.failures_left:
            self.failures_left -= 1
            raise IcatUnavailable("ICAT search failed: connection refused")

    def finished_investigations(
        self, since: datetime, until: datetime, excluded_types: Sequence[str]
    ):
        self.calls.append(("list", since, until, tuple(excluded_types)))
        self._maybe_fail()
        return [
            inv
            for inv in self.investigations.values()
            if inv.end_date is not None
            and since <= inv.end_date <= until
            and inv.type_name not in excluded_types
        ]

    def find_investigation(self, name: str, visit_id: str):
        self.calls.append(("find", name, visit_id))
        self._maybe_fail()
        return self.investigations.get((name, visit_id))

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def icat() -> FakeIcat:
    return FakeIcat()


class PssServer:
    """A real HTTP server answering GET /items/{name}/{visit}: 200 / 404 / 401 / 500 / slow."""

    def __init__(self):
        self.answers: dict[tuple[str, str], object] = {}
        self.requests: list[dict] = []
        self.slow_seconds = 2.5
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                # The API lives under /api (a base URL with a path, like real deployments).
                parts = self.path.split("/")
                raw = self.path
                if len(parts) == 5 and parts[1:3] == ["api", "items"]:
                    key = (unquote(parts[3]), unquote(parts[4]))
                else:
                    key = None
                server.requests.append(
                    {"path": raw, "key": key, "authorization": self.headers.get("Authorization")}
                )
                answer = server.answers.get(key, 404) if key else 400
                if answer == "slow":
                    time.sleep(server.slow_seconds)
                    answer = 200
                body = json.dumps({"pid": "x"} if answer == 200 else {"error": answer}).encode()
                try:
                    self.send_response(int(answer))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, name: str, status, visit_id: str = "1") -> None:
        self.answers[(name, visit_id)] = status

    def hits(self, name: str, visit_id: str = "1") -> int:
        return sum(1 for r in self.requests if r["key"] == (name, visit_id))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pss():
    server = PssServer()
    yield server
    server.stop()


class OpsBroker:
    """A uniquely named direct exchange with one queue bound for the ops routing key."""

    def __init__(self, broker_url: str, routing_key: str):
        suffix = uuid.uuid4().hex[:8]
        self.exchange_name = f"test-investigation-ops-{suffix}"
        self.exchange = Exchange(self.exchange_name, type="direct", durable=False)
        self.queue = Queue(
            f"test-investigation-ops-q-{suffix}",
            exchange=self.exchange,
            routing_key=routing_key,
            durable=False,
        )
        self.conn = Connection(broker_url)
        self.channel = self.conn.channel()
        self.exchange(self.channel).declare()
        self.queue(self.channel).declare()

    def drain(self) -> list:
        """Every message published since the last drain (acked)."""
        messages = []
        while True:
            message = self.queue(self.channel).get(no_ack=True)
            if message is None:
                return messages
            messages.append(message)

    def bodies(self) -> list[dict]:
        return [json.loads(m.body) for m in self.drain()]

    def close(self) -> None:
        self.queue(self.channel).delete()
        self.exchange(self.channel).delete()
        self.conn.release()


@pytest.fixture
def ops_broker(settings):
    broker = OpsBroker(settings.broker_url, settings.INVESTIGATION_OPS_ROUTING_KEY)
    yield broker
    broker.close()


@pytest.fixture
def check_settings(settings, pss, ops_broker):
    """Settings pointing at the PSS server and the test exchange (ICAT is the fake gateway)."""
    return dataclasses.replace(
        settings,
        ICAT_SERVER_URL="https://icat.example.org",
        ICAT_USERNAME="reader",
        ICAT_PASSWORD="secret",
        PANOSC_API_URL=pss.url,
        PANOSC_API_TIMEOUT=1,
        INVESTIGATION_OPS_EXCHANGE=ops_broker.exchange_name,
        INVESTIGATION_CHECK_WINDOW_DAYS=30,
        INDUSTRIAL_INVESTIGATION_TYPES=("INDUSTRIAL",),
    )


@pytest.fixture
def configured_app(app, check_settings, icat):
    """The session app using `check_settings` and the fake ICAT (restored after the test)."""
    original = app.extensions["settings"]
    app.extensions["settings"] = check_settings
    app.extensions[GATEWAY_FACTORY_KEY] = lambda settings: icat
    yield app
    app.extensions["settings"] = original
    app.extensions.pop(GATEWAY_FACTORY_KEY, None)
