"""Free text (`q`): a substring of `search_text`, looked up by the term's rarest trigrams.

`search_text LIKE '%term%'` makes the trigram index (one GIN index per partition) intersect the
posting lists of every trigram of the term. For an investigation number such as 2020700104 one of
them, `202`, is in 97 % of the rows (every investigation number of the 2020s starts with it) and
`020` in 15 %: the scan decodes lists as long as the partition, 6 ms per 1.2-million-row
partition, although `700` or `104` alone are in under 1 % of the rows. Its cost grew with the
table (27 ms at 5,000,000 rows, 6 ms at 1,000,000).

Every substring of the term is in every row that contains the term, so the same rows are found
by asking the index for a few of the term's rarest trigrams (`LIKE '%700%' AND LIKE '%104%'
...`) and checking the whole term on those candidates with `strpos`, which no index serves and
so stays a filter on the rows (bench/README.md: 27 → 2.6 ms at 5M rows, 6.3 → 1.3 ms at 1M).
The results are the same rows, whatever the choice: the choice only decides the work.

How rare a trigram is comes from the column's statistics sample, the one PostgreSQL's own
estimates for LIKE use (`pg_stats` of each partition: histogram bounds and most common values,
kept by autovacuum's ANALYZE), read at most once per process every `SAMPLE_TTL` seconds. Without
statistics (a new database), or when even the term's rarest trigram is common (a frequent error
word, whose first page the keyset list finds at once), the filter is the plain LIKE.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import has_app_context
from sqlalchemy import and_, func, text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db

#: Trigrams of the term asked of the index (the rarest ones): two already cut the candidates to
#: about the matches; a third guards against a pair that happens to be correlated.
KEYS = 3
#: The term itself in more than this share of the sample: the term is common.
RARE_TERM_SHARE = 0.005
#: The term's rarest trigram in more than this share of the sample: no trigram is rare enough.
COMMON_SHARE = 0.10
#: Fewer sample values than this say nothing about rarity: the plain LIKE.
MIN_SAMPLE = 50
#: Terms whose choice a sample remembers (beyond, it forgets them all and starts again).
MAX_REMEMBERED_TERMS = 1000
#: Seconds a process keeps the sample (autovacuum refreshes the statistics far less often).
SAMPLE_TTL = 600.0

#: What pg_trgm takes as one trigram of a LIKE pattern: three word characters (the index is on
#: lower-cased text). Other characters (separators, wildcards, non-ASCII) are never part of a key.
_WORD_RUN = re.compile(r"[a-z0-9]{3,}")

_SAMPLE_SQL = text(
    """
    SELECT s.histogram_bounds::text::text[] AS bounds, s.most_common_vals::text::text[] AS common
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                   AND s.attname = 'search_text'
    WHERE i.inhparent = 'messages'::regclass
    """
)


def trigrams(term: str) -> list[str]:
    """The term's distinct three-character windows of word characters, in order of position."""
    seen: dict[str, None] = {}
    for run in _WORD_RUN.findall(term):
        for i in range(len(run) - 2):
            seen.setdefault(run[i : i + 3], None)
    return list(seen)


class Sample:
    """How many sampled `search_text` values contain each trigram."""

    def __init__(self, values: Iterable[str]):
        self.values = list(values)
        self.size = len(self.values)
        self.counts: Counter[str] = Counter()
        for value in self.values:
            self.counts.update(trigrams(value))
        # A request asks twice per statement (the filter, then whether to run it in parallel).
        self._rarest: dict[str, tuple[str, ...] | None] = {}

    def rarest(self, term: str) -> tuple[str, ...] | None:
        """The term's rarest `KEYS` trigrams when they are worth asking for alone, else None
        (the plain LIKE asks for all of them)."""
        if term not in self._rarest:
            if len(self._rarest) >= MAX_REMEMBERED_TERMS:
                self._rarest.clear()
            self._rarest[term] = self._choose(term)
        return self._rarest[term]

    def _choose(self, term: str) -> tuple[str, ...] | None:
        windows = trigrams(term)
        if len(windows) <= KEYS or self.size < MIN_SAMPLE:
            return None
        if sum(term in value for value in self.values) > RARE_TERM_SHARE * self.size:
            # A frequent term (an error word): its own trigrams, padding included (pg_trgm's
            # word boundaries such as 'er ' of 'master.h5'), narrow it best.
            return None
        # Stable sort: among equally rare trigrams, the earlier ones.
        ranked = sorted(windows, key=self.counts.__getitem__)
        if self.counts[ranked[0]] > COMMON_SHARE * self.size:
            return None
        return tuple(ranked[:KEYS])


_EMPTY = Sample(())
_cache: dict[str, tuple[float, Sample]] = {}
_cache_lock = threading.Lock()


def sample() -> Sample:
    """This database's sample (cached per process for `SAMPLE_TTL` s); empty when unknown."""
    if not has_app_context():
        return _EMPTY
    key = db.engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and now - cached[0] < SAMPLE_TTL:
        return cached[1]
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < SAMPLE_TTL:
            return cached[1]
        try:
            # Its own connection: never a statement inside the request's transaction (which
            # may be read-only, serialisable or already failed).
            with db.engine.connect() as conn:
                rows = conn.execute(_SAMPLE_SQL).all()
        except SQLAlchemyError:
            rows = []
        values = [v for bounds, common in rows for v in (bounds or []) + (common or [])]
        found = Sample(values)
        _cache[key] = (now, found)
        return found


def forget_sample() -> None:
    """Read the statistics again at the next search (tests, after ANALYZE)."""
    with _cache_lock:
        _cache.clear()


def rare_keys(term: str) -> tuple[str, ...] | None:
    """The trigrams to look `term` (lower-cased) up by, or None for the plain LIKE."""
    return sample().rarest(term)


def contains(column: Any, term: str, escaped: str, by_rare_trigrams: bool = False) -> Any:
    """`column` contains `term` (lower-cased; `escaped`: the same with LIKE's wildcards
    escaped).

    `by_rare_trigrams`: for a statement that finds every match through the trigram index (the
    free-text pass, the count): the term's rarest trigrams as the index condition when it has
    some. Not for a list that walks the time order and stops at a page: PostgreSQL estimates
    each LIKE of the conjunction apart and would take a common term for a rare one, reading
    all its matches to sort them instead of stopping after a page (30 → 160 ms at 5M rows for
    a frequent error word)."""
    keys = rare_keys(term) if by_rare_trigrams else None
    if keys is None:
        return column.like(f"%{escaped}%", escape="\\")
    return by_keys(column, term, keys)


def by_keys(column: Any, term: str, keys: Iterable[str]) -> Any:
    """`column` contains `term`, the index asked for `keys` (trigrams of the term) only: each
    `LIKE '%key%'` holds for every row containing the term, `strpos` keeps exactly those."""
    # Keys are word characters only: nothing to escape.
    return and_(*(column.like(f"%{key}%") for key in keys), func.strpos(column, term) > 0)
