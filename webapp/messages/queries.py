"""Reads of messages for pages, API, export and live pushes. Never commits.

Every function takes the caller's `Scope` and applies it (the one permission gate, DESIGN §7),
then the `MessageFilter`. Lists use keyset pagination on (received_at DESC, id DESC) with opaque
cursors; counts stop at COUNT_CAP (a LIMIT subquery, never COUNT(*) over the table). The list
page counts inline only up to QUICK_COUNT_CAP and fetches a larger count after its rows are shown.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import g, has_app_context
from sqlalchemy import and_, func, literal, literal_column, or_, select, text, tuple_
from werkzeug.exceptions import NotFound

from models import Message
from models.identifiers import PROMOTED_IDENTIFIERS

from ..auth.scope import Scope
from ..errors import InvalidFilter
from ..extensions import db
from ..planner import local_settings
from . import text_search
from .filters import MessageFilter

#: Counts are exact up to here, then shown as "10,000+".
COUNT_CAP = 10_000
#: The list page counts up to here before it answers (a tenth of the work of COUNT_CAP: the count
#: is what grows with the data, the keyset page does not); beyond, it shows "1,000+" at once and
#: the exact figure up to COUNT_CAP from `/messages/count` when the rows are on screen.
QUICK_COUNT_CAP = 1_000
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_BIGINT_MAX = 2**63 - 1

#: Columns of a list row: everything but the payload, traceback and search text (can be large).
SUMMARY_COLUMNS = (
    Message.id,
    Message.received_at,
    Message.report_id,
    Message.message_type,
    Message.processing_start,
    Message.processing_end,
    Message.processing_ms,
    Message.hash,
    Message.payload_format,
    Message.errored,
    Message.error_message,
    Message.exchange_name,
    Message.routing_key,
    Message.object_identifiers,
    *(getattr(Message, name) for name in PROMOTED_IDENTIFIERS),
    Message.error_fingerprint,
    Message.acknowledged_at,
)


# ---- cursors --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """A position in the (received_at DESC, id DESC) order and the direction to read from it."""

    received_at: datetime
    id: int
    direction: str = "older"  # "older" (next page down) or "newer" (previous page)

    def encode(self) -> str:
        """Opaque URL-safe token."""
        raw = f"{self.direction[0]}|{self.received_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, field: str = "cursor") -> Cursor:
        """The cursor of a token from `encode`; InvalidFilter (400) naming `field` for anything
        else."""
        try:
            padded = token + "=" * (-len(token) % 4)
            direction, moment, ident = (
                base64.urlsafe_b64decode(padded.encode("ascii")).decode().split("|")
            )
            received_at = datetime.fromisoformat(moment)
            message_id = int(ident)
            if direction not in ("o", "n") or received_at.tzinfo is None:
                raise ValueError(direction)
            if not 0 <= message_id <= _BIGINT_MAX:
                raise ValueError(message_id)
        except (ValueError, UnicodeError, binascii.Error):
            raise InvalidFilter(
                f"The {'page cursor' if field == 'cursor' else field} is not valid "
                "(it may come from an old or edited link).",
                field=field,
            ) from None
        return cls(received_at, message_id, "older" if direction == "o" else "newer")

    @classmethod
    def from_args(cls, args: Any) -> Cursor | None:
        token = (args.get("cursor") or "").strip()
        return cls.decode(token) if token else None


def parse_limit(args: Any, default: int = DEFAULT_LIMIT) -> int:
    """The `limit` query argument (1..MAX_LIMIT); InvalidFilter otherwise."""
    raw = (args.get("limit") or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidFilter(f"'limit' must be a number from 1 to {MAX_LIMIT}.", field="limit")
    return int(raw)


def scoped(
    scope: Scope, filters: MessageFilter | None, *columns: Any, by_rare_trigrams: bool = False
):
    """`select(*columns)` over Message restricted by the scope and the filters
    (`by_rare_trigrams`: see text_search.contains)."""
    stmt = select(*columns).select_from(Message)
    if filters is not None:
        stmt = filters.apply(stmt, by_rare_trigrams=by_rare_trigrams)
    return scope.apply(stmt, Message)


# ---- lists ----------------------------------------------------------------------------------------
@dataclass
class MessagePage:
    """One page of list rows plus the cursors of the neighbouring pages."""

    rows: list[Any]
    older: Cursor | None = None
    newer: Cursor | None = None

    @property
    def is_first(self) -> bool:
        return self.newer is None


def list_messages(
    scope: Scope,
    filters: MessageFilter,
    cursor: Cursor | None = None,
    limit: int = DEFAULT_LIMIT,
    count_cap: int | None = None,
) -> MessagePage:
    """A page of summary rows, newest first, from `cursor` (one query). `count_cap` is the cap
    of the count the caller makes next (COUNT_CAP by default): the first page of a free-text
    search collects that many matches at most (see _first_text_page)."""
    if filters.q is not None and cursor is None:
        cap = COUNT_CAP if count_cap is None else count_cap
        page = _first_text_page(scope, filters, limit, cap)
        if page is not None:
            return page
    order = (Message.received_at, Message.id)
    stmt = scoped(scope, filters, *SUMMARY_COLUMNS)
    newer = cursor is not None and cursor.direction == "newer"
    if cursor is not None:
        position = tuple_(literal(cursor.received_at), literal(cursor.id))
        if newer:
            # The redundant plain bound lets PostgreSQL prune partitions (row comparisons don't).
            stmt = stmt.where(tuple_(*order) > position, Message.received_at >= cursor.received_at)
        else:
            stmt = stmt.where(tuple_(*order) < position, Message.received_at <= cursor.received_at)
    if newer:
        stmt = stmt.order_by(Message.received_at.asc(), Message.id.asc())
    else:
        stmt = stmt.order_by(Message.received_at.desc(), Message.id.desc())
    rows = db.session.execute(stmt.limit(limit + 1)).all()
    more = len(rows) > limit
    if newer and not more:
        # Back at the top: show a full first page (and switch live updates back on).
        return list_messages(scope, filters, None, limit)
    rows = rows[:limit]
    if newer:
        rows.reverse()
    page = MessagePage(rows)
    if not rows:
        if cursor is not None:
            # Nothing beyond the cursor: offer the way back.
            other = "newer" if cursor.direction == "older" else "older"
            setattr(page, other, Cursor(cursor.received_at, cursor.id, other))
        return page
    first, last = rows[0], rows[-1]
    if (more and not newer) or newer:
        page.older = Cursor(last.received_at, last.id, "older")
    if (more and newer) or (cursor is not None and not newer):
        page.newer = Cursor(first.received_at, first.id, "newer")
    return page


def _first_text_page(
    scope: Scope, filters: MessageFilter, limit: int, cap: int
) -> MessagePage | None:
    """The first page of a free-text search and its capped count from ONE trigram pass.

    Listing and counting a free-text filter separately costs two GIN bitmap scans of every
    partition (a rare term such as an investigation number matches few rows, but its digit
    trigrams are in almost every row: each scan reads long posting lists). Here the matches'
    (received_at, id), at most `cap` + 1 of them, are collected once; when they are all of
    them (a rare term) the page is their newest `limit` rows, read by primary key, and the count
    is theirs: the same rows and count as list_messages' keyset query and count_messages. When
    the cap is reached (a common term) the matches collected are not the newest: None, and
    list_messages runs its keyset query (cheap for a common term), while the capped count is
    kept for count_messages with the same cap (not counted twice). Each row carries one more
    column, `matched`.
    """
    hits = (
        scoped(scope, filters, Message.received_at, Message.id, by_rare_trigrams=True)
        .limit(cap + 1)
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )
    matched = select(func.count()).select_from(hits).scalar_subquery()
    top = (
        select(hits.c.received_at, hits.c.id)
        .order_by(hits.c.received_at.desc(), hits.c.id.desc())
        .limit(limit + 1)
        .subquery("top")
    )
    # `top` drives: one primary-key probe per row (joined on both key columns, so each probe
    # prunes to its partition), never a scan of `messages`.
    stmt = (
        select(*SUMMARY_COLUMNS, matched.label("matched"))
        .select_from(top)
        .join(Message, and_(Message.id == top.c.id, Message.received_at == top.c.received_at))
        .order_by(Message.received_at.desc(), Message.id.desc())
    )
    rows = _trigram_pass(stmt, filters.q.lower())
    value = rows[0].matched if rows else 0
    _keep_count(scope, filters, cap, Count(min(value, cap), value <= cap))
    if value > cap:
        return None
    page = MessagePage(rows[:limit])
    if len(rows) > limit:
        page.older = Cursor(rows[limit - 1].received_at, rows[limit - 1].id, "older")
    return page


def _trigram_pass(stmt: Any, term: str) -> list[Any]:
    """Rows of a statement whose work is the free-text filter's GIN bitmap scans (`term`:
    the filter's lower-cased text).

    Looked up by its rarest trigrams (text_search), a term costs a millisecond or two per
    partition: parallel workers would cost more to start than they save. Asked for every
    trigram (no statistics yet, or only common trigrams), each partition's scan can decode long
    posting lists: let PostgreSQL spread the partitions over parallel workers (a Parallel
    Append), which its row estimates for a substring (a few hundred rows) never make worth the
    default setup cost. For this statement only."""
    if text_search.rare_keys(term) is not None:
        return db.session.execute(stmt).all()
    with local_settings(parallel_setup_cost=0, parallel_tuple_cost=0):
        return db.session.execute(stmt).all()


def _keep_count(scope: Scope, filters: MessageFilter, cap: int, count: Count) -> None:
    """Remember a count just computed for this request's count_messages (read once)."""
    if has_app_context():
        g.setdefault("_message_counts", {})[(filters, cap)] = (scope, count)


def _kept_count(scope: Scope, filters: MessageFilter, cap: int) -> Count | None:
    kept = g.get("_message_counts") if has_app_context() else None
    key = (filters, cap)
    if not kept or key not in kept or kept[key][0] is not scope:
        return None
    return kept.pop(key)[1]


@dataclass(frozen=True)
class Count:
    """How many messages match, exact up to the cap."""

    value: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"{self.value:,}+"


def count_messages(
    scope: Scope,
    filters: MessageFilter,
    cap: int | None = None,
    as_of: Cursor | None = None,
) -> Count:
    """Matching rows, counted over a LIMIT cap+1 subquery (bounded work on any table size); or
    the count list_messages already made of a free-text search for this request (same cap).

    `as_of` counts only the rows at or below that position of the list order: the count of a
    page whose newest row it is, whatever arrived since (live updates add those)."""
    cap = COUNT_CAP if cap is None else cap
    if as_of is None:
        kept = _kept_count(scope, filters, cap)
        if kept is not None:
            return kept
    stmt = scoped(scope, filters, literal_column("1").label("one"), by_rare_trigrams=True)
    if as_of is not None:
        stmt = stmt.where(
            tuple_(Message.received_at, Message.id)
            <= tuple_(literal(as_of.received_at), literal(as_of.id)),
            Message.received_at <= as_of.received_at,
        )
    count = select(func.count()).select_from(stmt.limit(cap + 1).subquery())
    if filters.q is not None:
        value = _trigram_pass(count, filters.q.lower())[0][0]
    else:
        value = db.session.scalar(count)
    return Count(min(value, cap), value <= cap)


def iter_messages(
    scope: Scope,
    filters: MessageFilter,
    chunk: int = 1000,
    columns: Sequence[Any] = SUMMARY_COLUMNS,
) -> Iterator[Any]:
    """Every matching summary row, newest first, read in keyset chunks (for CSV export)."""
    cursor: Cursor | None = None
    while True:
        stmt = scoped(scope, filters, *columns)
        if cursor is not None:
            stmt = stmt.where(
                tuple_(Message.received_at, Message.id)
                < tuple_(literal(cursor.received_at), literal(cursor.id)),
                Message.received_at <= cursor.received_at,
            )
        stmt = stmt.order_by(Message.received_at.desc(), Message.id.desc()).limit(chunk)
        rows = db.session.execute(stmt).all()
        yield from rows
        if len(rows) < chunk:
            return
        cursor = Cursor(rows[-1].received_at, rows[-1].id)


#: A freshly written batch: (min id, max id, received from, received to). A writer commit shares
#: one `received_at`, so the range usually prunes to one partition.
BatchRange = tuple[int, int, datetime, datetime]


def _batches_clause(batches: Sequence[BatchRange]) -> Any:
    return or_(
        *(
            and_(Message.received_at.between(start, end), Message.id.between(low, high))
            for low, high, start, end in batches
        )
    )


def messages_in_batches(
    scope: Scope, filters: MessageFilter, batches: Sequence[BatchRange], limit: int = 100
) -> list[Any]:
    """Matching summary rows among freshly written batches, newest first (for live pushes)."""
    if not batches:
        return []
    stmt = scoped(scope, filters, *SUMMARY_COLUMNS).where(_batches_clause(batches))
    stmt = stmt.order_by(Message.received_at.desc(), Message.id.desc()).limit(limit)
    return db.session.execute(stmt).all()


def count_messages_in_batches(
    scope: Scope, filters: MessageFilter, batches: Sequence[BatchRange], cap: int = COUNT_CAP
) -> int:
    """How many messages of these batches match (bounded by `cap`)."""
    if not batches:
        return 0
    sub = (
        scoped(scope, filters, literal_column("1").label("one"))
        .where(_batches_clause(batches))
        .limit(cap)
        .subquery()
    )
    return db.session.execute(select(func.count()).select_from(sub)).scalar_one()


# ---- one message ----------------------------------------------------------------------------------
def get_message(scope: Scope, message_id: int) -> Message:
    """The message with this id if the scope sees it; 404 otherwise (unknown or out of scope)."""
    if not 0 < message_id <= _BIGINT_MAX:
        raise NotFound(f"There is no message {message_id}.")
    stmt = scope.apply(select(Message).where(Message.id == message_id), Message)
    message = db.session.execute(stmt).scalar_one_or_none()
    if message is None:
        raise NotFound(f"There is no message {message_id} (or you may not see it).")
    return message


# ---- message types for the filter form ------------------------------------------------------------
#: Types seen in real deployments (DESIGN §3), offered even before any arrived.
KNOWN_TYPES = (
    "dataset-ingestion",
    "internal-dataset-ingestion",
    "internal-statistics",
    "internal-dataset-links",
    "dataset-index",
    "investigation-ops",
    "proposal-sync",
    "user-sync",
    "unknown",
)
_TYPES_TTL = 60.0
_types_cache: dict[str, Any] = {"at": 0.0, "types": ()}
_types_lock = threading.Lock()

# A loose index scan of the hourly rollups (one probe per distinct type through
# ix_message_stats_message_type_bucket): never a scan of `messages`.
_DISTINCT_TYPES = text(
    """
    WITH RECURSIVE t(message_type) AS (
        (SELECT message_type FROM message_stats ORDER BY message_type LIMIT 1)
        UNION ALL
        SELECT (SELECT s.message_type FROM message_stats s WHERE s.message_type > t.message_type
                ORDER BY s.message_type LIMIT 1)
        FROM t WHERE t.message_type IS NOT NULL
    )
    SELECT message_type FROM t WHERE message_type IS NOT NULL LIMIT 500
    """
)


def message_types(scope: Scope | None = None) -> list[str]:
    """Message types to offer in the filter: stored ones (from the rollups, cached for a minute)
    plus known ones, narrowed to the types `scope` may see (a user whose groups all name their
    types is offered only those)."""
    now = time.monotonic()
    with _types_lock:
        if now - _types_cache["at"] < _TYPES_TTL:
            stored = _types_cache["types"]
        else:
            stored = tuple(db.session.execute(_DISTINCT_TYPES).scalars())
            _types_cache.update(at=now, types=stored)
    offered = set(stored) | set(KNOWN_TYPES)
    allowed = scope_types(scope) if scope is not None else None
    if allowed is not None:
        offered &= allowed
    return sorted(offered)


def scope_types(scope: Scope) -> frozenset[str] | None:
    """The message types `scope` may see; None when it is not limited by type."""
    if scope.see_all or not scope.restricted:
        return None
    allowed: set[str] = set()
    for rule in scope.rules:
        if not rule.message_types:
            return None  # this group sees every type (perhaps limited by identifiers)
        allowed |= rule.message_types
    return frozenset(allowed)


# ---- trace ----------------------------------------------------------------------------------------
#: Pipeline stages of one dataset, in order; stages sharing a number run in parallel (the default
#: of the PIPELINES setting, used when no pipeline is given).
PIPELINE_STAGES = (
    (1, "dataset-ingestion"),
    (2, "internal-dataset-ingestion"),
    (3, "internal-statistics"),
    (3, "internal-dataset-links"),
)
_TRACE_LIMIT = 500
_RELATED_LIMIT = 200


def numbered_stages(pipeline: Sequence[Sequence[str]] | None) -> tuple[tuple[int, str], ...]:
    """(stage number, message type) of a pipeline given as stages of message types."""
    if pipeline is None:
        return PIPELINE_STAGES
    return tuple((n, t) for n, stage in enumerate(pipeline, start=1) for t in stage)


@dataclass
class TraceStage:
    """One pipeline stage: its attempts (oldest first) and its state."""

    number: int
    message_type: str
    attempts: list[Any] = field(default_factory=list)
    #: False when an earlier stage failed: without a report, this stage was never reached.
    reached: bool = True

    @property
    def state(self) -> str:
        """missing (no report), not-reached (no report after an earlier failure), failed (the
        latest attempt errored) or ok."""
        if not self.attempts:
            return "missing" if self.reached else "not-reached"
        return "failed" if self.attempts[-1].errored else "ok"


@dataclass
class Trace:
    """The pipeline around one message: ordered stages plus related messages of other types."""

    message: Any
    stages: list[TraceStage]
    related: list[Any]
    truncated: bool = False

    @property
    def problems(self) -> list[TraceStage]:
        """Failed and missing stages (a stage not reached after a failure is not one more)."""
        return [s for s in self.stages if s.state in ("failed", "missing")]

    @property
    def not_reached(self) -> list[TraceStage]:
        return [s for s in self.stages if s.state == "not-reached"]


def trace_message(
    scope: Scope, message: Message, pipeline: Sequence[Sequence[str]] | None = None
) -> Trace:
    """Stages linked to `message`: same hash, stage 1→2 by instrument+investigation+dataset, later
    stages by dataset_id (DESIGN §6). At most four queries, each scoped.

    Links go only through fields the scope may see: a metadata-only user's trace follows the
    hash and never identifiers (a link would tell which messages share them).

    `pipeline` (stages of message types, see PIPELINES) defaults to the demo's dataset stages."""
    stage_list = numbered_stages(pipeline)
    stage_types = tuple(t for _, t in stage_list)
    #: Types of the first two stages: linked by instrument + investigation + dataset.
    early_types = tuple(t for n, t in stage_list if n <= 2)
    found: dict[int, Any] = {}
    by_triple = all(map(scope.can_see, ("instrument", "investigation", "dataset")))
    by_dataset_id = scope.can_see("dataset_id")

    def fetch(condition) -> None:
        stmt = scoped(scope, None, *SUMMARY_COLUMNS).where(condition)
        stmt = stmt.order_by(Message.received_at.desc(), Message.id.desc()).limit(_TRACE_LIMIT)
        for row in db.session.execute(stmt):
            found.setdefault(row.id, row)

    fetch(Message.id == message.id)
    if message.hash and scope.can_see("hash"):
        fetch(Message.hash == message.hash)
    seen_ids: set[str] = set()
    seen_triples: set[tuple[str, str, str]] = set()
    for _ in range(2):
        # Links found in one round (a dataset id from stage 2, a triple from stage 1) feed the next.
        triples = {
            (r.instrument, r.investigation, r.dataset)
            for r in found.values()
            if by_triple
            and r.message_type in early_types
            and r.instrument
            and r.investigation
            and r.dataset
        } - seen_triples
        dataset_ids = {r.dataset_id for r in found.values() if by_dataset_id and r.dataset_id}
        dataset_ids -= seen_ids
        if not triples and not dataset_ids:
            break
        conditions = []
        if triples:
            conditions.append(
                and_(
                    Message.message_type.in_(early_types),
                    tuple_(Message.instrument, Message.investigation, Message.dataset).in_(
                        sorted(triples)
                    ),
                )
            )
        if dataset_ids:
            conditions.append(Message.dataset_id.in_(sorted(dataset_ids)))
        fetch(or_(*conditions))
        seen_triples |= triples
        seen_ids |= dataset_ids
    # Attempts in processing order (a retry after a failure comes after it), then arrival.
    rows = sorted(
        found.values(), key=lambda r: (r.processing_start or r.received_at, r.received_at, r.id)
    )
    stages = [TraceStage(n, t, [r for r in rows if r.message_type == t]) for n, t in stage_list]
    failed_at = min((s.number for s in stages if s.state == "failed"), default=None)
    for stage in stages:
        stage.reached = failed_at is None or stage.number <= failed_at
    related = [r for r in rows if r.message_type not in stage_types]
    return Trace(message, stages, related, truncated=len(found) >= _TRACE_LIMIT)


def related_messages(scope: Scope, message: Message) -> tuple[list[Any], bool]:
    """Messages sharing `message`'s hash or all of its identifiers (for types without a
    pipeline), newest first, without `message` itself; scoped, and linked only through fields
    the scope may see. Returns (rows, truncated)."""
    conditions = []
    if message.hash and scope.can_see("hash"):
        conditions.append(Message.hash == message.hash)
    identifiers = message.object_identifiers or {}
    if identifiers and scope.can_see("object_identifiers"):
        conditions.append(Message.object_identifiers.contains(identifiers))
    if not conditions:
        return [], False
    stmt = (
        scoped(scope, None, *SUMMARY_COLUMNS)
        .where(or_(*conditions), Message.id != message.id)
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(_RELATED_LIMIT + 1)
    )
    rows = list(db.session.execute(stmt))
    return rows[:_RELATED_LIMIT], len(rows) > _RELATED_LIMIT
