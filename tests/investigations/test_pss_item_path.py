"""PANOSC_ITEM_PATH (issue 19 §2.3): the item path is a template, so sites running an older PACER
(items at /items/{name}) are not asked to create their items forever."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webapp.config import ConfigError, Settings
from webapp.investigations import services
from webapp.investigations.pss import PssState, pss_client_for

from .conftest import NOW, investigation

BASE = {"RMQ_HOST": "localhost", "ENVIRONMENT": "testing", "DISABLED_AUTH": "true"}


class OldPacerPss:
    """A real HTTP server of an older PACER: items live at /api/items/{name} only; any other
    path is 404 (as the real service answers an unknown route)."""

    def __init__(self, items: set[str]):
        self.items = items
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.paths.append(self.path)
                parts = self.path.split("/")
                found = len(parts) == 4 and parts[1:3] == ["api", "items"] and parts[3] in items
                body = json.dumps({"pid": parts[-1]} if found else {"error": 404}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def old_pss():
    server = OldPacerPss({"INV-OLD"})
    yield server
    server.stop()


def test_default_path_is_name_and_visit(settings):
    s = Settings.from_env(BASE)
    assert s.PANOSC_ITEM_PATH == "/items/{name}/{visit_id}"
    client = pss_client_for(dataclasses.replace(settings, PANOSC_API_URL="http://pss/api"))
    assert client.item_url("a/b", "v 1") == "http://pss/api/items/a%2Fb/v%201"


def test_older_pacer_path_finds_the_item(old_pss, settings):
    s = dataclasses.replace(
        settings, PANOSC_API_URL=old_pss.url, PANOSC_API_TIMEOUT=1, PANOSC_ITEM_PATH="/items/{name}"
    )
    # With the default template the old service says 404: "absent", forever.
    default = pss_client_for(dataclasses.replace(s, PANOSC_ITEM_PATH="/items/{name}/{visit_id}"))
    assert default.item_state("INV-OLD", "1").state is PssState.ABSENT

    assert pss_client_for(s).item_state("INV-OLD", "1").state is PssState.PRESENT
    assert old_pss.paths[-1] == "/api/items/INV-OLD"


def test_check_with_the_older_path_requests_no_item(db, icat, old_pss, check_settings, ops_broker):
    s = dataclasses.replace(
        check_settings, PANOSC_API_URL=old_pss.url, PANOSC_ITEM_PATH="/items/{name}"
    )
    icat.add(investigation("INV-OLD", doi="10.5286/abc"))

    result = services.run_checks(db.session, s, gateway=icat, pss=pss_client_for(s), now=NOW)

    assert ops_broker.bodies() == []
    outcome = result.outcomes[0]
    assert (outcome.status, outcome.has_pss_item, outcome.operations) == ("complete", True, [])


@pytest.mark.parametrize(
    "path",
    [
        "/items/{name}/{visitId}",
        "/items/{id}",
        "/items/{0}",
        "/items/{name!r}",
        "/items/{name:>10}",
        "/items/{visit_id}",
        "items/{name}",
        "/items/{name}?x=1",
        "/items/{name",
    ],
)
def test_bad_item_path_fails_start_up_naming_the_variable(path):
    with pytest.raises(ConfigError, match="PANOSC_ITEM_PATH"):
        Settings.from_env({**BASE, "PANOSC_ITEM_PATH": path})


@pytest.mark.parametrize(
    "path", ["/items/{name}", "/v2/items/{name}/{visit_id}/", "/i/{{x}}/{name}"]
)
def test_good_item_paths(path):
    assert Settings.from_env({**BASE, "PANOSC_ITEM_PATH": path}).PANOSC_ITEM_PATH == path
