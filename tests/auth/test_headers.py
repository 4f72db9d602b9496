"""Response headers and origins: no-store on data, a connect-src limited to this site, the
WebSocket Origin check, and an OIDC redirect_uri that comes from PUBLIC_URL, not from Host."""

from __future__ import annotations

import dataclasses
import http.client
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.auth.support import login
from tests.processes import serve_in_process
from webapp.config import ConfigError, Settings

# ---- Cache-Control ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/?status=errored",
        "/messages/{A}",
        "/messages/{A}/trace",
        "/errors",
        "/stats",
        "/api/v1/messages",
        "/api/v1/messages/{A}",
        "/api/v1/stats",
        "/api/v1/error-groups",
        "/no-such-page",
        "/healthz",
        "/metrics",
    ],
)
def test_pages_and_api_answers_are_not_stored(client, seeded, path):
    response = client.get(path.format(A=seeded.ids["A"]))
    assert response.status_code in (200, 404, 503), response.status_code
    assert "no-store" in response.headers.get("Cache-Control", ""), path


@pytest.mark.parametrize("path", ["/static/js/csrf.js", "/static/css/app.css", "/favicon.ico"])
def test_static_assets_stay_cacheable(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


# ---- Content-Security-Policy connect-src --------------------------------------------------------


def connect_src(response) -> list[str]:
    csp = response.headers["Content-Security-Policy"]
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("connect-src"))
    return directive.split()[1:]


@pytest.fixture
def configure(app):
    original = app.extensions["settings"]

    def apply(**fields):
        app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], **fields)

    yield apply
    app.extensions["settings"] = original


def test_connect_src_is_this_site_only(client, configure):
    sources = connect_src(client.get("/", headers={"Host": "dash.example.org:8443"}))
    assert sources == ["'self'", "ws://dash.example.org:8443", "wss://dash.example.org:8443"]
    configure(PUBLIC_URL="https://dashboard.example.org")
    sources = connect_src(client.get("/"))
    assert "ws:" not in sources and "wss:" not in sources  # not any host
    assert "wss://dashboard.example.org" in sources
    assert sources[0] == "'self'"


def test_a_strange_host_header_is_not_echoed_into_the_policy(client):
    response = client.get("/", headers={"Host": "x; script-src *"})
    csp = response.headers.get("Content-Security-Policy", "")
    assert "script-src *" not in csp


# ---- WebSocket Origin -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_server(app):
    with serve_in_process(app) as server:
        yield server.server_port


def handshake(port: int, origin: str | None) -> int:
    """Status of a raw WebSocket handshake on /ws/messages with this Origin (101 = upgraded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request("GET", "/ws/messages", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.slow
def test_websocket_handshake_checks_origin(db, ws_server, configure):
    port = ws_server
    for hostile in (
        "http://evil.example",
        f"http://evil.example:{port}",
        f"https://127.0.0.1:{port}",  # another scheme is another origin
        "null",
        f"http://127.0.0.1:{port}.evil.example",
    ):
        assert handshake(port, hostile) == 403, hostile
    assert handshake(port, f"http://127.0.0.1:{port}") == 101
    assert handshake(port, None) == 101  # not a browser: no ambient cookies to abuse
    configure(PUBLIC_URL="https://dashboard.example.org")
    assert handshake(port, "https://dashboard.example.org") == 101
    assert handshake(port, "https://dashboard.example.org:443") == 101
    assert handshake(port, "http://dashboard.example.org") == 403


# ---- OIDC redirect_uri --------------------------------------------------------------------------


@pytest.fixture
def provider(app, auth_enabled, monkeypatch):
    """A real local OpenID provider (oidc-provider-mock) registered as the app's OIDC client."""
    from oidc_provider_mock import run_server_in_thread

    from webapp.auth.setup import _register_oidc_client

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with run_server_in_thread(port=0) as server:
        url = f"http://localhost:{server.server_port}"
        app.extensions["settings"] = dataclasses.replace(auth_enabled, SSO_SERVER_URL=url)
        _register_oidc_client(app, app.extensions["settings"])
        try:
            yield url
        finally:
            app.extensions.pop("authlib.integrations.flask_client", None)


def redirect_uri(client, host: str) -> str:
    response = client.get("/login", headers={"Host": host})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return parse_qs(urlsplit(response.headers["Location"]).query)["redirect_uri"][0]


def test_redirect_uri_comes_from_public_url_not_host(app, db, client, provider, configure):
    configure(PUBLIC_URL="https://dashboard.example.org")
    assert redirect_uri(client, "evil.example") == "https://dashboard.example.org/auth/callback"
    assert redirect_uri(client, "localhost") == "https://dashboard.example.org/auth/callback"


def test_redirect_uri_falls_back_to_the_request_in_development(app, db, client, provider):
    assert app.extensions["settings"].PUBLIC_URL == ""
    assert redirect_uri(client, "localhost:5000") == "http://localhost:5000/auth/callback"


def test_post_logout_redirect_uri_comes_from_public_url(
    app, db, client, provider, configure, make_user
):
    from flask import g

    from tests.auth.support import csrf_token

    configure(PUBLIC_URL="https://dashboard.example.org/")
    login(client, make_user("jane"))
    token = csrf_token(client)
    g.pop("_login_user", None)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["post_logout_redirect_uri"] == ["https://dashboard.example.org/"]


# ---- PUBLIC_URL configuration ---------------------------------------------------------------------

BASE = {"RMQ_HOST": "localhost", "SECRET_KEY": "k3y-" + "0123456789abcdef" * 3}
AUTH = {
    "DISABLED_AUTH": "false",
    "SSO_SERVER_URL": "https://sso.example.org/realms/x",
    "SSO_CLIENT_ID": "dashboard",
    "SSO_CLIENT_SECRET": "secret",
}


def test_public_url_required_in_production_with_auth():
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Settings.from_env(environ={**BASE, **AUTH, "ENVIRONMENT": "production"})
    settings = Settings.from_env(
        environ={
            **BASE,
            **AUTH,
            "ENVIRONMENT": "production",
            "PUBLIC_URL": "https://dashboard.example.org/",
        }
    )
    assert settings.PUBLIC_URL == "https://dashboard.example.org"
    assert settings.public_origin == "https://dashboard.example.org"
    # Development may fall back to the request's host; auth disabled needs no callback.
    Settings.from_env(environ={**BASE, **AUTH, "ENVIRONMENT": "development"})
    Settings.from_env(environ={**BASE, "ENVIRONMENT": "production", "DISABLED_AUTH": "true"})


@pytest.mark.parametrize(
    "value",
    [
        "dashboard.example.org",
        "ftp://dashboard.example.org",
        "https://",
        "https://dashboard.example.org/?x=1",
        "https://dashboard.example.org/#x",
        "https://user:pw@dashboard.example.org",
        "https://dashboard.example.org:99999",
        "https://dash board.example.org",
        "javascript:alert(1)",
    ],
)
def test_public_url_must_be_a_plain_http_url(value):
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Settings.from_env(environ={**BASE, "DISABLED_AUTH": "true", "PUBLIC_URL": value})


def test_metrics_networks_are_validated():
    with pytest.raises(ConfigError, match="METRICS_ALLOW_NETWORKS"):
        Settings.from_env(
            environ={**BASE, "DISABLED_AUTH": "true", "METRICS_ALLOW_NETWORKS": "10.0.0.0/8,x"}
        )
    settings = Settings.from_env(
        environ={**BASE, "DISABLED_AUTH": "true", "METRICS_ALLOW_NETWORKS": "10.0.0.0/8, ::1/128"}
    )
    assert settings.METRICS_ALLOW_NETWORKS == ("10.0.0.0/8", "::1/128")
