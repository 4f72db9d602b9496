"""The python-icat adapter against a stubbed client: the exact queries, paging, sessions."""

from __future__ import annotations

import urllib.error
import zoneinfo
from datetime import UTC, datetime
from types import SimpleNamespace

import icat.exception
import pytest

from webapp.investigations.gateway import (
    IcatUnavailable,
    PythonIcatGateway,
    gateway_for,
    jpql_string,
    jpql_timestamp,
)

SINCE = datetime(2026, 4, 10, 4, 30, tzinfo=UTC)
UNTIL = datetime(2026, 5, 10, 4, 30, 15, tzinfo=UTC)


def entity(
    ident, name, visit="1", doi=None, end=datetime(2026, 5, 1, 12, 0), type_name="EXPERIMENT"
):
    return SimpleNamespace(
        id=ident,
        name=name,
        visitId=visit,
        doi=doi,
        endDate=end,
        type=SimpleNamespace(name=type_name),
    )


class StubClient:
    """Records what the adapter asks; answers from scripted pages (a list per search call)."""

    def __init__(self, url, pages=(), session_errors=0):
        self.url = url
        self.pages = list(pages)
        self.session_errors = session_errors
        self.logins: list[tuple] = []
        self.queries: list[str] = []
        self.logged_out = 0

    def login(self, auth, credentials):
        self.logins.append((auth, dict(credentials)))
        return "session-id"

    def search(self, query):
        self.queries.append(str(query))
        if self.session_errors:
            self.session_errors -= 1
            raise icat.exception.ICATSessionError("Unable to find user by sessionid")
        return self.pages.pop(0) if self.pages else []

    def logout(self):
        self.logged_out += 1


def make_gateway(stub: StubClient, **kwargs) -> tuple[PythonIcatGateway, list[str]]:
    created: list[str] = []

    def factory(url):
        created.append(url)
        return stub

    gateway = PythonIcatGateway(
        "https://icat.example.org", "ldap", "reader", "p'w", client_factory=factory, **kwargs
    )
    return gateway, created


def test_client_is_created_and_logged_in_lazily():
    stub = StubClient("u")
    gateway, created = make_gateway(stub)
    assert created == []  # constructing the gateway contacts nothing

    gateway.finished_investigations(SINCE, UNTIL, ("INDUSTRIAL",))

    assert created == ["https://icat.example.org"]
    assert stub.logins == [("ldap", {"username": "reader", "password": "p'w"})]


def test_window_query_bounds_and_type_exclusion():
    stub = StubClient("u", pages=[[entity(7, "INV-1", doi="10.1/a")]])
    gateway, _ = make_gateway(stub)

    found = gateway.finished_investigations(SINCE, UNTIL, ("INDUSTRIAL", "IN'HOUSE"))

    assert stub.queries == [
        "SELECT i FROM Investigation i JOIN i.type t WHERE "
        "i.endDate >= {ts 2026-04-10 04:30:00} AND i.endDate <= {ts 2026-05-10 04:30:15} "
        "AND t.name NOT IN ('INDUSTRIAL', 'IN''HOUSE') AND i.id > 0 "
        "ORDER BY i.id INCLUDE i.type LIMIT 0, 500"
    ]
    assert len(found) == 1
    inv = found[0]
    assert (inv.name, inv.visit_id, inv.doi, inv.type_name) == (
        "INV-1",
        "1",
        "10.1/a",
        "EXPERIMENT",
    )
    # ICAT answers naive local times: read in the server's zone (UTC here).
    assert inv.end_date == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_timestamps_are_written_in_the_icat_server_time_zone():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    stub = StubClient("u", pages=[[entity(1, "INV", end=datetime(2026, 5, 1, 14, 0))]])
    gateway, _ = make_gateway(stub, server_timezone=paris)

    found = gateway.finished_investigations(SINCE, UNTIL, ())

    assert (
        "i.endDate >= {ts 2026-04-10 06:30:00} AND i.endDate <= {ts 2026-05-10 06:30:15}"
        in (stub.queries[0])
    )
    assert "NOT IN" not in stub.queries[0]  # nothing excluded: no empty NOT IN ()
    assert found[0].end_date == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_pages_are_fetched_by_keyset_until_a_short_page():
    stub = StubClient(
        "u",
        pages=[
            [entity(3, "A"), entity(9, "B")],
            [entity(12, "C"), entity(20, "D")],
            [entity(31, "E")],
        ],
    )
    gateway, _ = make_gateway(stub, page_size=2)

    found = gateway.finished_investigations(SINCE, UNTIL, ("INDUSTRIAL",))

    assert [i.name for i in found] == ["A", "B", "C", "D", "E"]
    assert [q.split(" AND i.id > ")[1] for q in stub.queries] == [
        "0 ORDER BY i.id INCLUDE i.type LIMIT 0, 2",
        "9 ORDER BY i.id INCLUDE i.type LIMIT 0, 2",
        "20 ORDER BY i.id INCLUDE i.type LIMIT 0, 2",
    ]


def test_name_with_a_quote_is_escaped():
    stub = StubClient("u", pages=[[entity(5, "O'Brien 2026", visit="v' OR '1'='1")]])
    gateway, _ = make_gateway(stub)

    inv = gateway.find_investigation("O'Brien 2026", "v' OR '1'='1")

    assert stub.queries == [
        "SELECT i FROM Investigation i WHERE i.name = 'O''Brien 2026' "
        "AND i.visitId = 'v'' OR ''1''=''1' ORDER BY i.id INCLUDE i.type LIMIT 0, 2"
    ]
    assert inv.name == "O'Brien 2026"


def test_unknown_investigation_is_none():
    gateway, _ = make_gateway(StubClient("u", pages=[[]]))
    assert gateway.find_investigation("NOPE", "1") is None


def test_expired_session_logs_in_again_and_repeats_the_query():
    stub = StubClient("u", pages=[[entity(1, "A")]], session_errors=1)
    gateway, _ = make_gateway(stub)
    gateway.find_investigation("A", "1")  # first login
    stub.pages = [[entity(1, "A")]]
    stub.session_errors = 1  # the session expired between two calls

    inv = gateway.find_investigation("A", "1")

    assert inv.name == "A"
    assert len(stub.logins) == 3  # initial, after the first error, after the second
    assert len(stub.queries) == 4


def test_session_refused_after_a_new_login_is_unavailable():
    stub = StubClient("u", session_errors=2)
    gateway, _ = make_gateway(stub)
    with pytest.raises(IcatUnavailable, match="session refused"):
        gateway.find_investigation("A", "1")


def test_server_errors_and_network_errors_are_unavailable():
    class Failing(StubClient):
        def search(self, query):
            raise icat.exception.ICATInternalError("database down")

    gateway, _ = make_gateway(Failing("u"))
    with pytest.raises(IcatUnavailable, match="database down"):
        gateway.finished_investigations(SINCE, UNTIL, ())

    def unreachable(url):
        raise urllib.error.URLError("connection refused")

    gateway = PythonIcatGateway(
        "https://icat.example.org", "db", "u", "p", client_factory=unreachable
    )
    with pytest.raises(IcatUnavailable, match="cannot reach ICAT"):
        gateway.find_investigation("A", "1")


def test_bad_credentials_are_reported():
    class Refusing(StubClient):
        def login(self, auth, credentials):
            raise icat.exception.ICATSessionError("The username and password do not match")

    gateway, _ = make_gateway(Refusing("u"))
    with pytest.raises(IcatUnavailable, match="refused the login of 'reader'"):
        gateway.find_investigation("A", "1")


def test_a_bad_query_is_not_hidden_as_unavailable():
    class Rejecting(StubClient):
        def search(self, query):
            raise icat.exception.ICATParameterError("bad query")

    gateway, _ = make_gateway(Rejecting("u"))
    with pytest.raises(icat.exception.ICATParameterError):
        gateway.find_investigation("A", "1")


def test_close_logs_out_once():
    stub = StubClient("u", pages=[[]])
    gateway, _ = make_gateway(stub)
    gateway.close()  # never logged in: nothing to do
    assert stub.logged_out == 0
    gateway.find_investigation("A", "1")
    gateway.close()
    gateway.close()
    assert stub.logged_out == 1


def test_literals():
    assert jpql_string("a'b''c") == "'a''b''''c'"
    with pytest.raises(ValueError, match="NUL"):
        jpql_string("a\x00b")
    with pytest.raises(ValueError, match="aware"):
        jpql_timestamp(datetime(2026, 1, 1))


def test_gateway_from_settings(settings):
    gateway = gateway_for(settings)
    assert isinstance(gateway, PythonIcatGateway)
    assert gateway.auth_plugin == settings.ICAT_AUTH_PLUGIN
    assert gateway._client is None
