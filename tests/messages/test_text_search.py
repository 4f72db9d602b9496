"""Free text by the term's rarest trigrams (webapp/messages/text_search.py): the same rows as
the plain LIKE whatever trigrams are chosen, the choice read from real statistics, and the
index asked for the chosen trigrams only."""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy import column, select, table, text

from tests.factories import report_body as body
from webapp.extensions import db as sa_db
from webapp.messages import text_search
from webapp.messages.filters import escape_like
from webapp.messages.text_search import KEYS, MIN_SAMPLE, Sample, trigrams

from .test_free_text import TERMS, former, texts, walk  # noqa: F401 - `texts` is a fixture

#: Sampled values that contain none of the terms' trigrams: every term with more than KEYS
#: trigrams is looked up by the first KEYS of them.
FILLER = Sample(["zzz qqq"] * MIN_SAMPLE)

EXTRA_TERMS = (
    "/data/run12/master",  # several words, separators
    "ror: cannot open /data/run4",
    "on=2025810060",  # a separator inside
    "mx_14",
)


@pytest.fixture
def rare_lookup(monkeypatch):
    """Every free-text pass uses the rarest-trigram form (as with statistics of a large table)."""
    monkeypatch.setattr(text_search, "sample", lambda: FILLER)


def test_trigrams_are_the_word_windows_of_the_term():
    assert trigrams("2020700104") == ["202", "020", "207", "070", "700", "001", "010", "104"]
    # Separators, wildcards and non-ASCII letters are never inside a key.
    assert trigrams("bl04-1 größe 50%_done") == ["bl0", "l04", "don", "one"]
    assert trigrams("ab") == []


def test_the_rarest_trigrams_of_a_rare_term_are_chosen():
    sample = Sample(["investigation=2020123456 bl04"] * 60 + ["run 700 104 070"] * 4)
    # '202', '020' are in every value; '070', '700', '104' in a few; the others in none.
    assert sample.rarest("2020700104") == ("207", "001", "010")
    assert sample.rarest("2020123456") is None  # the term itself is common
    assert sample.rarest("bl04") is None  # too few trigrams to leave any out
    assert Sample(["x"] * (MIN_SAMPLE - 1)).rarest("2020700104") is None  # no evidence
    # Even the rarest trigram is common: the plain LIKE (with its padded word boundaries).
    assert Sample(["2020700 0700104"] * 40 + ["y"] * 60).rarest("2020700104") is None


@pytest.mark.parametrize("sample", [Sample([]), FILLER], ids=["plain-like", "rarest-trigrams"])
def test_free_text_gives_the_former_rows_either_way(client, pg, texts, monkeypatch, sample):  # noqa: F811
    monkeypatch.setattr(text_search, "sample", lambda: sample)
    for term in TERMS + EXTRA_TERMS:
        every, count, exact = former(pg, term)
        assert walk(client, f"/api/v1/messages?q={term}&limit=7") == (every, count, exact), term
        html = client.get("/", query_string={"q": term}).get_data(as_text=True)
        listed = re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', html)
        assert [int(i) for i in listed] == every[:50], term
        deferred = client.get("/messages/count", query_string={"q": term}).get_json()
        assert (deferred["count"], deferred["count_exact"]) == (count, exact), term


def test_any_choice_of_trigrams_finds_the_same_rows(app, db):
    """Random texts over an alphabet of word characters, separators, LIKE wildcards and
    non-ASCII letters; terms cut from them and made up: the conjunction of the chosen
    trigrams and strpos gives exactly LIKE's rows."""
    rng = random.Random(17)
    alphabet = "ab01 -_%./\\öß"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    cut = set()
    for value in rng.sample([v for v in values if len(v) >= 3], 60):
        start = rng.randint(0, len(value) - 3)
        cut.add(value[start : start + rng.randint(3, 9)])
    made_up = {"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 9))) for _ in range(60)}
    terms = sorted(cut | made_up)
    texts_table = table("free_text_probe", column("id"), column("search_text"))
    with app.app_context():
        sa_db.session.execute(
            text("CREATE TEMP TABLE free_text_probe (id int, search_text text) ON COMMIT DROP")
        )
        sa_db.session.execute(
            text("INSERT INTO free_text_probe SELECT i, v FROM unnest(:v) WITH ORDINALITY u(v, i)"),
            {"v": values},
        )
        col = texts_table.c.search_text
        tried = 0
        for term in terms:
            plain = text_search.contains(col, term, escape_like(term))
            expected = sa_db.session.scalars(select(texts_table.c.id).where(plain)).all()
            for keys in _choices(term, rng):
                condition = text_search.by_keys(col, term, keys)
                got = sa_db.session.scalars(select(texts_table.c.id).where(condition)).all()
                assert sorted(got) == sorted(expected), (term, keys)
                tried += 1
        sa_db.session.rollback()
    assert tried > 50


def _choices(term: str, rng: random.Random) -> list[tuple[str, ...]]:
    windows = trigrams(term)
    if not windows:
        return [()]
    return [tuple(rng.sample(windows, min(KEYS, len(windows)))) for _ in range(3)]


def test_the_index_is_asked_for_the_chosen_trigrams_only(app, db, texts, rare_lookup):  # noqa: F811
    from models import Message

    keys = FILLER.rarest("2025810060")
    assert keys == ("202", "025", "258")
    with app.app_context():
        stmt = select(Message.id).where(
            text_search.contains(Message.search_text, "2025810060", "2025810060", True)
        )
        compiled = stmt.compile(dialect=sa_db.engine.dialect)
        sa_db.session.execute(text("SET LOCAL enable_seqscan = off"))
        explained = sa_db.session.connection().exec_driver_sql(
            f"EXPLAIN {compiled.string}", compiled.params
        )
        plan = "\n".join(explained.scalars())
        sa_db.session.rollback()
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert index_conditions and all(
        "'%202%'" in line and "'%258%'" in line and "2025810060" not in line
        for line in index_conditions
    ), plan
    assert "strpos(search_text, '2025810060'::text) > 0" in plan, plan


def test_the_choice_comes_from_the_tables_statistics(app, db, write_reports, pg):
    """Investigation numbers of the 2020s: '202' is in every row, the rest of a number rarely."""
    rng = random.Random(5)
    bodies = [
        body(object_identifiers={"investigation": str(rng.randint(2020000000, 2026999999))})
        for _ in range(400)
    ]
    write_reports(*bodies)
    with pg.cursor() as cur:
        cur.execute("ANALYZE messages")
    pg.commit()
    text_search.forget_sample()
    try:
        with app.app_context():
            sample = text_search.sample()
            assert sample.size >= MIN_SAMPLE
            keys = text_search.rare_keys("2029701304")
        assert keys is not None and len(keys) == KEYS and "202" not in keys, keys
    finally:
        text_search.forget_sample()
