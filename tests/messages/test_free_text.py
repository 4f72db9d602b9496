"""Free-text search (`q`): the one-pass first page and LIKE give the very rows and counts of the
former definition (ILIKE, a keyset list query and a separate capped count), on real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import ack
from tests.factories import report_body as body
from webapp.messages import queries
from webapp.partitions.services import aligned_range

TERMS = (
    "2025810060",  # an investigation number: rare
    "master.h5",  # a common error word
    "MASTER.H5",  # upper case: the filter lower-cases
    "dataset",  # in every row's identifiers
    "größe",  # non-ASCII, stored lower-cased
    "GRÖSSE",  # Python lowers it to 'grösse': no match, like before
    "50%_done",  # LIKE wildcards are literal
    "nothing-like-this",
)


@pytest.fixture
def texts(write_reports, settings, pg):
    """Messages in three partitions (and DEFAULT) with rare, common and odd terms; some
    acknowledged."""
    months = settings.MESSAGE_PARTITION_MONTHS
    current = aligned_range(datetime.now(UTC), months)
    start = datetime.combine(current.start, datetime.min.time(), tzinfo=UTC)
    moments = [start - timedelta(days=400), start - timedelta(days=3), start, start.replace(day=9)]
    ids: list[int] = []
    for n, moment in enumerate(moments):
        bodies = []
        for i in range(30):
            errors = {}
            if i % 2 == 0:
                errors = {"cb": f"OSError: cannot open /data/run{i}/master.h5"}
            elif i % 5 == 0:
                errors = {"cb": "ValueError: Größe 50%_done"}
            investigation = "2025810060" if (i + n) % 11 == 0 else f"20250000{n}{i:02d}"
            bodies.append(
                body(
                    errored=bool(errors),
                    error_message=errors,
                    object_identifiers={
                        "instrument": "BL13",
                        "investigation": investigation,
                        "dataset": f"mx_{i}",
                    },
                )
            )
        # Several batches per moment: ties on received_at are broken by id.
        ids += write_reports(*bodies[:15], now=moment)
        ids += write_reports(*bodies[15:], now=moment)
    ack(pg, ids[::7])
    return ids


def former(pg, term: str, extra: str = "acknowledged_at IS NULL", cap: int = 10_000):
    """The former definition: ILIKE, keyset order, LIMIT 50; count over LIMIT cap + 1."""
    pattern = "%" + queries_escape(term.lower()) + "%"
    with pg.cursor() as cur:
        cur.execute(
            f"SELECT id FROM messages WHERE {extra} AND search_text ILIKE %s ESCAPE '\\' "  # noqa: S608
            "ORDER BY received_at DESC, id DESC",
            (pattern,),
        )
        every = [r[0] for r in cur.fetchall()]
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM messages WHERE {extra} "  # noqa: S608
            "AND search_text ILIKE %s ESCAPE '\\' LIMIT %s) s",
            (pattern, cap + 1),
        )
        value = cur.fetchone()[0]
    return every, min(value, cap), value <= cap


def queries_escape(value: str) -> str:
    from webapp.messages.filters import escape_like

    return escape_like(value)


def walk(client, url: str) -> tuple[list[int], int, bool]:
    first = client.get(url).get_json()
    ids = [item["id"] for item in first["items"]]
    link = first["links"]["older"]
    while link:
        page = client.get(link).get_json()
        ids += [item["id"] for item in page["items"]]
        link = page["links"]["older"]
    return ids, first["count"], first["count_exact"]


@pytest.mark.parametrize("cap", [10_000, 12])
def test_free_text_gives_the_former_rows_and_counts(client, pg, texts, monkeypatch, cap):
    monkeypatch.setattr(queries, "COUNT_CAP", cap)
    for term in TERMS:
        every, count, exact = former(pg, term, cap=cap)
        assert walk(client, f"/api/v1/messages?q={term}&limit=7") == (every, count, exact), term
        first = client.get(f"/api/v1/messages?q={term}").get_json()
        assert [i["id"] for i in first["items"]] == every[:50], term
        # Acknowledged shown, and with another filter.
        every, count, exact = former(pg, term, "true", cap=cap)
        assert walk(client, f"/api/v1/messages?q={term}&acknowledged=shown&limit=9") == (
            every,
            count,
            exact,
        ), term
        every, count, exact = former(pg, term, "acknowledged_at IS NULL AND errored", cap=cap)
        assert walk(client, f"/api/v1/messages?q={term}&status=errored&limit=5") == (
            every,
            count,
            exact,
        ), term


def test_free_text_page_shows_the_former_count(client, pg, texts, monkeypatch):
    """The page counts up to QUICK_COUNT_CAP in its one trigram pass; beyond, it lists by the
    keyset query and its deferred count is the former count up to COUNT_CAP."""
    for quick, cap in ((10_000, 10_000), (12, 10_000), (12, 20)):
        monkeypatch.setattr(queries, "QUICK_COUNT_CAP", quick)
        monkeypatch.setattr(queries, "COUNT_CAP", cap)
        every, count, exact = former(pg, "master.h5", cap=cap)
        html = client.get("/?q=master.h5").get_data(as_text=True)
        listed = re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', html)
        assert [int(i) for i in listed] == every[:50]
        if len(every) <= quick:
            assert f'data-count="{count}" data-exact="true">{count}<' in html
            continue
        assert f'data-count="{quick}" data-exact="pending"' in html and f">{quick}+<" in html
        url = re.search(r'data-count-url="([^"]+)"', html).group(1).replace("&amp;", "&")
        deferred = client.get(url).get_json()
        assert (deferred["count"], deferred["count_exact"]) == (count, exact)


def test_a_rare_term_is_listed_and_counted_in_one_statement(
    client, texts, count_queries, monkeypatch
):
    client.get("/api/v1/messages")  # warm caches
    with count_queries() as statements:
        data = client.get("/api/v1/messages?q=2025810060").get_json()
    assert data["count_exact"] and data["count"] == len(data["items"]) > 0
    touching = [s for s in statements if "search_text" in s]
    assert len(touching) == 1, touching
    # A common term beyond the cap: counted once, then listed by the keyset query.
    monkeypatch.setattr(queries, "COUNT_CAP", 12)
    with count_queries() as statements:
        data = client.get("/api/v1/messages?q=master.h5").get_json()
    assert (data["count"], data["count_exact"]) == (12, False)
    assert len([s for s in statements if "search_text" in s]) == 2


def test_postgres_lower_leaves_python_lowered_text_unchanged(pg):
    """Why LIKE of the lower-cased term equals ILIKE over search_text (lower-cased by Python
    at ingestion): PostgreSQL's lower() changes no code point Python's lower() produces, in
    this database's locale."""
    produced = sorted({chr(cp).lower() for cp in range(1, 0x110000) if not 0xD800 <= cp <= 0xDFFF})
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*), array_agg(x) FILTER (WHERE lower(x) <> x) FROM unnest(%s::text[]) x",
            (produced,),
        )
        total, changed = cur.fetchone()
    assert total == len(produced) and changed is None, changed[:20]
