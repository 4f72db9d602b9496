"""Inputs that used to end in a 500 (penetration test, issue 14): each is now a 4xx with a reason.
The API answers JSON naming the parameter; a page keeps the user's other input (a link back to
the same page without the bad argument)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

PAGES = ("/stats", "/errors")
APIS = ("/api/v1/stats", "/api/v1/error-groups")
#: (query, the argument it is about): moments Python cannot step past (year 9999 ends the
#: datetime range: rounding to the hour or stepping a month overflowed).
FAR_FUTURE = [
    ({"until": "9999-12-31T23:59:59"}, "until"),
    ({"until": "9999-12-31T23:30:00Z"}, "until"),
    ({"since": "9990-01-01", "until": "9999-12-31T23:00:00"}, "until"),
]
#: A bare date was a 400 already, but a page gave no way back that kept the rest of the filter.
PAGE_FAR_FUTURE = [*FAR_FUTURE, ({"until": "9999-12-31"}, "until")]


@pytest.fixture(params=["admin", "anonymous"])
def user(request, app):
    """Auth disabled (everyone an admin), or auth enabled and nobody logged in."""
    if request.param == "anonymous":
        request.getfixturevalue("auth_enabled")
    return request.param


@pytest.mark.parametrize("path", APIS)
@pytest.mark.parametrize(("query", "name"), FAR_FUTURE)
def test_api_far_future_is_a_json_400_naming_it(client, user, path, query, name):
    response = client.get(path, query_string=query)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["field"] == name
    assert name in body["message"] and "9999" in body["message"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(("query", "name"), PAGE_FAR_FUTURE)
def test_page_far_future_is_a_400_that_keeps_the_other_input(client, user, path, query, name):
    """The page itself answers (400): the refused field is marked next to its input with the
    reason and keeps what was typed; every other filter is applied and stays in the form."""
    query = {**query, "type": "dataset-ingestion", "acknowledged": "shown"}
    response = client.get(path, query_string=query, headers={"Accept": "text/html"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    field = re.search(rf'<input id="field-{name}"[^>]*>', text)
    assert field, f"no {name} field on the page"
    assert 'aria-invalid="true"' in field.group(0)
    assert f'value="{query[name]}"' in field.group(0), "the typed value is kept"
    error = re.search(rf'<span class="field-error" id="error-{name}">([^<]*)</span>', text)
    assert error and "9999" in error.group(1)
    assert 'role="alert"' in text and f'href="#field-{name}"' in text
    # The other filters stay in the form, applied.
    assert re.search(r'value="dataset-ingestion"[^>]*(selected|checked)', text) or re.search(
        r'(selected|checked)[^>]*value="dataset-ingestion"', text
    ), "the type filter is kept"
    if path == "/errors":  # (/stats has no acknowledged field)
        assert re.search(r'<input id="field-acknowledged"[^>]*value="shown"[^>]*checked', text)


def test_moments_up_to_the_limit_still_work(client):
    for path in PAGES + APIS + ("/", "/api/v1/messages"):
        response = client.get(path, query_string={"since": "2020-01-01", "until": "9998-12-31"})
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])


ADMIN_LISTS = ("/admin/groups/", "/admin/users/", "/admin/audit/")


@pytest.mark.parametrize("path", ADMIN_LISTS)
def test_admin_search_with_nul_is_a_400(client, path):
    response = client.get(path, query_string={"search": "ab\x00c", "page_size": "20"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    assert "search" in text and "NUL" in text
    assert parse_qs(urlsplit(_retry_link(text)).query) == {"page_size": ["20"]}


@pytest.mark.parametrize(
    ("path", "arg"),
    [("/admin/audit/", "flt0_0"), ("/admin/audit/", "flt2_9"), ("/admin/quarantine/", "flt0_0")],
)
def test_admin_filter_with_nul_is_a_400(client, path, arg):
    response = client.get(path, query_string={arg: "x\x00", "search": "kept"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    assert arg in text and "NUL" in text
    assert parse_qs(urlsplit(_retry_link(text)).query) == {"search": ["kept"]}


def _retry_link(text: str) -> str:
    match = re.search(r'<a [^>]*id="retry"[^>]*href="([^"]+)"', text) or re.search(
        r'<a [^>]*href="([^"]+)"[^>]*id="retry"', text
    )
    assert match, "no link back to the page without the bad argument"
    return html.unescape(match.group(1))
