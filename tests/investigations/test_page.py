"""The /investigations page: every check with its state, status filter, expired rows in red,
details permission."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from models.investigations import InvestigationCheck
from tests.auth.support import login

from .conftest import NOW


@pytest.fixture
def checks(db):
    """One check per status (plus an escaping probe); returns them by name."""

    def add(name, status, days_ago, **fields):
        row = InvestigationCheck(
            name=name,
            visit_id=fields.pop("visit_id", "1"),
            end_date=NOW - timedelta(days=days_ago),
            first_checked_at=NOW - timedelta(days=days_ago - 1),
            last_checked_at=NOW,
            status=status,
            **fields,
        )
        db.session.add(row)
        return row

    rows = [
        add(
            "INV-PENDING",
            "pending",
            3,
            attempts=2,
            has_doi=False,
            has_pss_item=True,
            operations_sent=[
                {"operations": ["mint-proposal"], "at": "2026-05-08T04:30:00+00:00"},
                {"operations": ["mint-proposal"], "at": "2026-05-09T04:30:00+00:00"},
            ],
        ),
        add("INV-COMPLETE", "complete", 4, attempts=1, has_doi=True, has_pss_item=True),
        add(
            "INV-EXPIRED",
            "expired",
            31,
            attempts=30,
            has_doi=True,
            has_pss_item=False,
            operations_sent=[
                {"operations": ["create-panosc-item"], "at": "2026-04-10T04:30:00+00:00"}
            ],
        ),
        add(
            "INV-ERROR",
            "error",
            5,
            attempts=1,
            has_doi=True,
            has_pss_item=None,
            last_error="PSS answered HTTP 500",
        ),
        add(
            "<script>alert(1)</script>",
            "error",
            6,
            attempts=1,
            last_error="<b>not bold</b>",
        ),
    ]
    db.session.commit()
    return {r.name: r for r in rows}


def row_html(html: str, name: str) -> str:
    for row in re.findall(r"<tr class=\"check[^>]*>.*?</tr>", html, re.S):
        if f'<td class="name">{name}</td>' in row:
            return row
    raise AssertionError(f"no row for {name}")


def test_page_lists_every_check_with_its_state(client, checks):
    response = client.get("/investigations")
    assert response.status_code == 200
    html = response.get_data(as_text=True)

    pending = row_html(html, "INV-PENDING")
    assert 'class="check-status status-pending">pending' in pending
    assert "flag-missing" in pending and "flag-present" in pending
    assert '<td class="num">2</td>' in pending
    assert pending.count('<span class="chip">mint-proposal</span>') == 2
    assert "2026-05-09 04:30" in pending

    error = row_html(html, "INV-ERROR")
    assert "PSS answered HTTP 500" in error
    assert "flag-unknown" in error

    # Expired checks stand out.
    expired = row_html(html, "INV-EXPIRED")
    assert re.search(r'<tr class="check status-expired expired"', expired)
    assert 'class="check-tile tile-expired' in html
    assert "expired" not in row_html(html, "INV-COMPLETE").split(">")[0]

    # Report data is escaped.
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html

    # Most recent end date first.
    order = [n for n in re.findall(r'<td class="name">([^<]+)</td>', html)]
    assert order[:3] == ["INV-PENDING", "INV-COMPLETE", "INV-ERROR"]
    assert order[-1] == "INV-EXPIRED"


def test_filter_by_status(client, checks):
    html = client.get("/investigations?status=expired").get_data(as_text=True)
    assert re.findall(r'<td class="name">([^<]+)</td>', html) == ["INV-EXPIRED"]

    html = client.get("/investigations?status=error").get_data(as_text=True)
    names = re.findall(r'<td class="name">([^<]+)</td>', html)
    assert sorted(names) == sorted(["INV-ERROR", "&lt;script&gt;alert(1)&lt;/script&gt;"])
    # The status tiles count every check whatever the filter.
    assert re.search(r'data-status="error">\s*<span class="tile-count">2</span>', html)


def test_bad_status_is_a_400_with_a_reason(client, checks):
    response = client.get("/investigations?status=bogus")
    assert response.status_code == 400
    assert "unknown status" in response.get_data(as_text=True)
    response = client.get("/investigations?status=bogus", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["field"] == "status"


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "after=garbage", "q=" + "x" * 201])
def test_other_bad_input_is_a_400(client, checks, query):
    assert client.get(f"/investigations?{query}").status_code == 400


def test_search_and_keyset_pages(client, checks):
    html = client.get("/investigations?q=inv-").get_data(as_text=True)
    assert len(re.findall(r'<td class="name">', html)) == 4

    first = client.get("/investigations?limit=2").get_data(as_text=True)
    assert re.findall(r'<td class="name">([^<]+)</td>', first) == ["INV-PENDING", "INV-COMPLETE"]
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url).get_data(as_text=True)
    assert re.findall(r'<td class="name">([^<]+)</td>', second) == [
        "INV-ERROR",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ]


def test_empty_page(client, db):
    html = client.get("/investigations").get_data(as_text=True)
    assert "No investigation check has run yet" in html


def test_nav_links_to_the_page(client, db):
    html = client.get("/investigations").get_data(as_text=True)
    assert 'href="/investigations" aria-current="page">Investigations</a>' in html


def test_anonymous_and_groupless_users_are_refused(client, checks, auth_enabled, make_user):
    response = client.get("/investigations")
    assert response.status_code == 403
    assert "INV-PENDING" not in response.get_data(as_text=True)

    login(client, make_user("nobody"))
    response = client.get("/investigations")
    assert response.status_code == 403
    assert "INV-PENDING" not in response.get_data(as_text=True)


def test_users_with_details_see_the_page(client, checks, auth_enabled, make_user, make_group):
    viewers = make_group("viewers", identifier_rules={"instrument": ["BL06"]})
    login(client, make_user("viewer", groups=[viewers]))
    response = client.get("/investigations")
    assert response.status_code == 200
    assert "INV-PENDING" in response.get_data(as_text=True)
