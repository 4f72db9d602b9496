"""Keyset pagination across partitions, capped counts, and a constant number of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import report_body as body
from webapp.messages import queries
from webapp.partitions.services import aligned_range


@pytest.fixture
def spread(write_reports, settings):
    """Messages on both sides of two partition boundaries and in the DEFAULT partition."""
    months = settings.MESSAGE_PARTITION_MONTHS
    current = aligned_range(datetime.now(UTC), months)
    boundary = datetime.combine(current.end, datetime.min.time(), tzinfo=UTC)
    start = datetime.combine(current.start, datetime.min.time(), tzinfo=UTC)
    moments = [
        start - timedelta(days=3),  # before every partition: the DEFAULT one
        start,  # first instant of the current partition
        start + timedelta(hours=5),
        boundary - timedelta(microseconds=1),  # last instant of the current partition
        boundary,  # first instant of the next one
        boundary + timedelta(days=40),
    ]
    ids: list[int] = []
    for n, moment in enumerate(moments):
        # Several rows share each received_at (one writer batch): ties are broken by id.
        ids += write_reports(*(body() for _ in range(3 + n % 2)), now=moment)
    return ids


def walk(client, direction_key: str, url: str) -> list[list[int]]:
    pages = []
    while url:
        data = client.get(url).get_json()
        pages.append([item["id"] for item in data["items"]])
        url = data["links"][direction_key]
    return pages


def test_cursor_pages_return_every_row_exactly_once_across_partitions(client, pg, spread):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT tableoid) FROM messages WHERE id = ANY(%s)", (list(spread),)
        )
        assert cur.fetchone()[0] >= 3, "the data must span several partitions"
        cur.execute(
            "SELECT id FROM messages WHERE id = ANY(%s) ORDER BY received_at DESC, id DESC",
            (list(spread),),
        )
        expected = [r[0] for r in cur.fetchall()]

    older_pages = walk(client, "older", "/api/v1/messages?limit=4")
    flat = [i for p in older_pages for i in p]
    assert flat == expected
    assert all(len(p) == 4 for p in older_pages[:-1])

    # And back up from the last page with the "newer" cursors.
    last = client.get("/api/v1/messages?limit=4").get_json()
    while last["links"]["older"]:
        last = client.get(last["links"]["older"]).get_json()
    assert [i["id"] for i in last["items"]] == older_pages[-1]
    newer_pages = walk(client, "newer", last["links"]["newer"])
    back = [i for p in reversed(newer_pages) for i in p] + older_pages[-1]
    assert sorted(set(back)) == sorted(expected)
    assert len(back) == len(set(back)), "a row appeared twice going back"


def test_the_page_links_walk_the_same_rows(client, spread):
    seen: list[int] = []
    url = "/?limit=5"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += [int(x) for x in re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', html)]
        match = re.search(r'<a rel="next" href="([^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert sorted(seen) == sorted(spread)
    assert len(seen) == len(set(seen))


def test_infinite_scroll_fragment_continues_after_the_page(client, spread):
    html = client.get("/?limit=5").get_data(as_text=True)
    first = re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', html)
    fragment_url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "fragment=rows" in fragment_url
    fragment = client.get(fragment_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment
    more = re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', fragment)
    assert len(more) == 5 and not set(more) & set(first)


def test_counts_are_exact_up_to_the_cap_then_marked(client, monkeypatch, spread):
    html = client.get("/").get_data(as_text=True)
    assert re.search(
        rf'id="message-count" data-count="{len(spread)}" data-exact="true">'
        rf"{len(spread)}<",
        html,
    )
    monkeypatch.setattr(queries, "COUNT_CAP", 10)
    data = client.get("/api/v1/messages").get_json()
    assert (data["count"], data["count_exact"]) == (10, False)
    assert client.get("/messages/count").get_json() == {
        "count": 10,
        "count_exact": False,
        "text": "10+",
    }


def count_url(response) -> str:
    html = response.get_data(as_text=True)
    return re.search(r'data-count-url="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_the_page_counts_a_little_and_defers_the_rest(client, monkeypatch, spread):
    """Beyond QUICK_COUNT_CAP the page answers with "N+" at once and names the URL of its exact
    count (up to COUNT_CAP), as of its newest row, with its filters."""
    monkeypatch.setattr(queries, "QUICK_COUNT_CAP", 3)
    response = client.get("/?acknowledged=shown&limit=5")
    html = response.get_data(as_text=True)
    assert re.search(
        r'id="message-count" data-count="3" data-exact="pending" data-count-url=', html
    )
    assert ">3+<" in html
    url = count_url(response)
    assert url.startswith("/messages/count?") and "as_of=" in url
    assert "acknowledged=shown" in url and "limit" not in url
    assert client.get(url).get_json() == {
        "count": len(spread),
        "count_exact": True,
        "text": str(len(spread)),
    }
    # Pages further down have no live updates: their count is not pinned to a row.
    older = re.search(r'href="(/\?[^"]*cursor=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "as_of=" not in count_url(client.get(older))


def test_the_deferred_count_is_as_of_the_pages_newest_row(client, write_reports, spread):
    """Rows that arrive after the page was rendered are not in its count: live updates add
    them on the page (otherwise they would be counted twice)."""
    html = client.get("/?acknowledged=shown").get_data(as_text=True)
    newest = int(re.search(r'<tr class="msg [^"]*" data-id="(\d+)"', html).group(1))
    row = client.get(f"/api/v1/messages/{newest}").get_json()
    as_of = queries.Cursor(datetime.fromisoformat(row["received_at"]), newest).encode()
    write_reports(body(), now=datetime.now(UTC) + timedelta(days=400))
    now = client.get("/messages/count?acknowledged=shown").get_json()["count"]
    then = client.get(f"/messages/count?acknowledged=shown&as_of={as_of}").get_json()["count"]
    assert (now, then) == (len(spread) + 1, len(spread))


def test_a_bad_count_position_is_refused_naming_it(client, spread):
    response = client.get("/messages/count?as_of=not-a-cursor")
    assert response.status_code == 400
    assert "as_of" in response.get_data(as_text=True)


def test_count_never_scans_with_count_star_over_the_table(client, count_queries, spread):
    with count_queries() as statements:
        client.get("/")
    counts = [s for s in statements if "count(" in s.lower()]
    assert counts, "the page shows a count"
    assert all("LIMIT" in s.upper() for s in counts), counts


def test_invalid_and_foreign_cursors_are_rejected(client):
    for token in ("%%%", "bm90IGEgY3Vyc29y", "eHxub3R8YQ"):
        response = client.get(f"/api/v1/messages?cursor={token}")
        assert response.status_code == 400
        assert response.get_json()["field"] == "cursor"


def test_a_page_of_fifty_runs_a_constant_number_of_queries(client, write_reports, count_queries):
    write_reports(
        *(
            body(errored=i % 3 == 0, error_message={"cb": "E: x"} if i % 3 == 0 else {})
            for i in range(5)
        )
    )
    client.get("/")  # warm caches (message types)
    with count_queries() as few:
        assert client.get("/").status_code == 200
    write_reports(*(body() for _ in range(60)))
    with count_queries() as many:
        html = client.get("/").get_data(as_text=True)
    assert html.count('<tr class="msg ') == 50
    assert len(many) == len(few) <= 3, many
    with count_queries() as api:
        assert len(client.get("/api/v1/messages").get_json()["items"]) == 50
    assert len(api) <= 3, api
