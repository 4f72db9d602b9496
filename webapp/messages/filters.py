"""The message filter: parsed once from request args, applied to any `select()` over `Message`.

This is the one definition of "which messages match" shared by the list page, the JSON API, CSV
export, live pushes, statistics, error groups and bulk actions. Its public API is stable:

    filters = MessageFilter.from_args(request.args)   # raises InvalidFilter (400) with a reason
    stmt = filters.apply(select(Message.id))          # adds WHERE clauses (AND of every filter)
    url_for("messages.index", **filters.url_args())    # back to a URL; `to_args()` gives pairs
    filters.replace(status="errored")                  # a modified copy (dataclasses.replace)

It does NOT apply the user's scope: callers do `current_scope().apply(stmt, Message)` as well.

Query arguments (every one optional; empty values are ignored, unknown arguments are ignored so
pages can carry `cursor`, `limit`, `format`, ...):

==============  ============================================================================
`type`          message type, repeatable (`?type=a&type=b`: either type)
`status`        `all` (default), `errored`, `ok`
`acknowledged`  `hidden` (default: acknowledged messages are not listed), `shown`, `only`
`instrument`, `investigation`, `dataset`, `dataset_id`, `visit_id`
                exact match on the promoted identifier column; one argument per identifier of
                models/identifiers.py (instrument is case-insensitive: stored lower-cased)
`hash`          full hash, or a prefix of at least 6 characters (case-insensitive)
`id`            a report id (envelope id), or a numeric message id
`routing_key`   exact
`payload_format`  `json`, `xml` or `text`
`fingerprint`   error fingerprint (`v1:...`), as on the errors page
`q`             free text over identifiers and error text (substring, case-insensitive)
`since`         received at or after (ISO date or date-time; naive = UTC)
`until`         received before (exclusive); a bare date means "through the end of that day"
==============  ============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_

from models import Message
from models.identifiers import IDENTIFIERS

from ..errors import InvalidFilter
from . import text_search

STATUSES = ("all", "errored", "ok")
#: What the pages call each status: "failed" is the operators' word; `errored` stays the URL value
#: (DESIGN §6) and the column name.
STATUS_LABELS = {"all": "all", "errored": "failed", "ok": "ok"}
ACKNOWLEDGED = ("hidden", "shown", "only")
PAYLOAD_FORMATS = ("json", "xml", "text")
#: A shorter hash prefix would match too much to be useful (and defeat the index).
MIN_HASH_PREFIX = 6
#: Longest accepted value of any text filter (identifiers are stored up to 500 characters).
MAX_VALUE_LENGTH = 500
MAX_TYPES = 50
#: Free text shorter than a trigram cannot use the trigram index.
MIN_QUERY_LENGTH = 3
_BIGINT_MAX = 2**63 - 1

#: Exact-match text filters besides the identifiers: query argument → column.
_EXACT_COLUMNS = {
    "routing_key": Message.routing_key,
    "fingerprint": Message.error_fingerprint,
}


@dataclass(frozen=True)
class MessageFilter:
    """Every filter of the message list; the default instance matches the default list."""

    types: tuple[str, ...] = ()
    status: str = "all"
    acknowledged: str = "hidden"
    # One field per promoted identifier, declared in models/identifiers.py (`instrument`,
    # `investigation`, ...: `str | None`, None = not filtered), so a new identifier is a filter
    # without an edit here.
    for _identifier in IDENTIFIERS:
        __annotations__[_identifier.name] = "str | None"
        vars()[_identifier.name] = None
    del _identifier
    hash: str | None = None
    id: str | None = None
    routing_key: str | None = None
    payload_format: str | None = None
    fingerprint: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: How `since`/`until` were typed (a bare date stays a date in URLs).
    since_text: str | None = None
    until_text: str | None = None

    # ---- parsing --------------------------------------------------------------------------------
    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> MessageFilter:
        """Parse query arguments (a werkzeug MultiDict or a plain mapping); InvalidFilter if bad."""
        values: dict[str, Any] = {}
        types = [t.strip() for t in _getlist(args, "type") if t and t.strip()]
        if len(types) > MAX_TYPES:
            raise InvalidFilter(f"At most {MAX_TYPES} message types can be selected.", field="type")
        for t in types:
            _check_length("type", t)
        values["types"] = tuple(dict.fromkeys(types))  # de-duplicated, order kept

        status = _get(args, "status") or "all"
        if status not in STATUSES:
            raise InvalidFilter(
                f"Unknown status {status!r}: use one of {', '.join(STATUSES)}.", field="status"
            )
        values["status"] = status

        acknowledged = _get(args, "acknowledged") or "hidden"
        if acknowledged not in ACKNOWLEDGED:
            raise InvalidFilter(
                f"Unknown acknowledged value {acknowledged!r}: use one of "
                f"{', '.join(ACKNOWLEDGED)}.",
                field="acknowledged",
            )
        values["acknowledged"] = acknowledged

        for identifier in IDENTIFIERS:
            values[identifier.name] = identifier.normalise(_get(args, identifier.name))
        for name in _EXACT_COLUMNS:
            values[name] = _get(args, name)

        hash_ = _get(args, "hash")
        if hash_ is not None:
            hash_ = hash_.lower()
            if len(hash_) < MIN_HASH_PREFIX:
                raise InvalidFilter(
                    f"A hash filter needs at least {MIN_HASH_PREFIX} characters "
                    f"(got {len(hash_)}).",
                    field="hash",
                )
        values["hash"] = hash_
        values["id"] = _get(args, "id")

        payload_format = _get(args, "payload_format")
        if payload_format is not None:
            payload_format = payload_format.lower()
            if payload_format not in PAYLOAD_FORMATS:
                raise InvalidFilter(
                    f"Unknown payload format {payload_format!r}: use one of "
                    f"{', '.join(PAYLOAD_FORMATS)}.",
                    field="payload_format",
                )
        values["payload_format"] = payload_format

        q = _get(args, "q")
        if q is not None and len(q) < MIN_QUERY_LENGTH:
            raise InvalidFilter(
                f"Free-text search needs at least {MIN_QUERY_LENGTH} characters.", field="q"
            )
        values["q"] = q

        since_text, until_text = _get(args, "since"), _get(args, "until")
        since = _parse_moment("since", since_text, end_of_day=False)
        until = _parse_moment("until", until_text, end_of_day=True)
        if since is not None and until is not None and since >= until:
            # `until` is exclusive (a bare date counts to the end of that day): nothing could match.
            raise InvalidFilter(
                f"'since' ({since_text}) must be before 'until' ({until_text}).", field="since"
            )
        values.update(since=since, until=until, since_text=since_text, until_text=until_text)
        return cls(**values)

    # ---- back to URLs ---------------------------------------------------------------------------
    def to_args(self) -> list[tuple[str, str]]:
        """The non-default filters as query argument pairs (what `from_args` reads back)."""
        pairs: list[tuple[str, str]] = [("type", t) for t in self.types]
        if self.status != "all":
            pairs.append(("status", self.status))
        if self.acknowledged != "hidden":
            pairs.append(("acknowledged", self.acknowledged))
        for name in (
            *(identifier.name for identifier in IDENTIFIERS),
            "hash",
            "id",
            "routing_key",
            "payload_format",
            "fingerprint",
            "q",
        ):
            value = getattr(self, name)
            if value is not None:
                pairs.append((name, value))
        if self.since is not None:
            pairs.append(("since", self.since_text or self.since.isoformat()))
        if self.until is not None:
            pairs.append(("until", self.until_text or self.until.isoformat()))
        return pairs

    def url_args(self) -> dict[str, Any]:
        """`to_args()` as keyword arguments for `url_for` (repeated keys become lists)."""
        out: dict[str, Any] = {}
        for key, value in self.to_args():
            if key == "type":
                out.setdefault("type", []).append(value)
            else:
                out[key] = value
        return out

    def replace(self, **changes: Any) -> MessageFilter:
        """A copy with some filters changed (e.g. `replace(status="errored")`)."""
        return replace(self, **changes)

    @property
    def is_default(self) -> bool:
        """True when no filter is set (the plain default list)."""
        return self == MessageFilter()

    def active(self) -> list[tuple[str, str]]:
        """Human-readable (label, value) pairs of the filters that narrow the list."""
        return [
            (k.replace("_", " "), STATUS_LABELS.get(v, v) if k == "status" else v)
            for k, v in self.to_args()
        ]

    # ---- SQL ------------------------------------------------------------------------------------
    def clauses(self, model: Any = Message, by_rare_trigrams: bool = False) -> list[Any]:
        """The WHERE conditions (ANDed) of this filter for `Message` (or an alias of it);
        `by_rare_trigrams`: the free text as text_search.contains puts it for a statement that
        finds every match through the trigram index."""
        m = model
        where: list[Any] = []
        if self.types:
            where.append(m.message_type.in_(self.types))
        # Plain `errored` / `NOT errored` (not IS TRUE): PostgreSQL proves only the plain form
        # implies the predicate of the partial index of unacknowledged errors.
        if self.status == "errored":
            where.append(m.errored)
        elif self.status == "ok":
            where.append(~m.errored)
        if self.acknowledged == "hidden":
            where.append(m.acknowledged_at.is_(None))
        elif self.acknowledged == "only":
            where.append(m.acknowledged_at.is_not(None))
        for identifier in IDENTIFIERS:
            value = getattr(self, identifier.name)
            if value is not None:
                where.append(getattr(m, identifier.name) == value)
        for name, column in _EXACT_COLUMNS.items():
            value = getattr(self, name)
            if value is not None:
                where.append(getattr(m, column.key) == value)
        if self.hash is not None:
            where.append(_hash_clause(m, self.hash))
        if self.id is not None:
            where.append(_id_clause(m, self.id))
        if self.payload_format is not None:
            where.append(m.payload_format == self.payload_format)
        if self.q is not None:
            # search_text is lower-cased at ingestion (Python's str.lower), and PostgreSQL's
            # lower() leaves such text as it is (every code point: tests/messages/
            # test_free_text.py), so LIKE of the lower-cased term matches the very rows ILIKE
            # did, without lower-casing each candidate row (half the cost of a recheck). The
            # trigram index serves both, asked for the term's rarest trigrams (text_search).
            term = self.q.lower()
            where.append(
                text_search.contains(m.search_text, term, escape_like(term), by_rare_trigrams)
            )
        if self.since is not None:
            where.append(m.received_at >= self.since)
        if self.until is not None:
            where.append(m.received_at < self.until)
        return where

    def apply(self, stmt: Any, model: Any = Message, by_rare_trigrams: bool = False) -> Any:
        """`stmt` (a select over `Message`) narrowed by every filter."""
        where = self.clauses(model, by_rare_trigrams)
        return stmt.where(and_(*where)) if where else stmt


# ---- helpers ------------------------------------------------------------------------------------
def escape_like(value: str) -> str:
    """Escape LIKE wildcards (`%`, `_`) and the escape character itself."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _hash_clause(m: Any, value: str) -> Any:
    like = m.hash.like(f"{escape_like(value)}%", escape="\\")
    if not value.isascii():
        return like
    # LIKE gives the meaning; the range lets the btree index on `hash` serve a prefix.
    upper = value[:-1] + chr(ord(value[-1]) + 1)
    return and_(m.hash >= value, m.hash < upper, like)


def _id_clause(m: Any, value: str) -> Any:
    if value.isdigit() and int(value) <= _BIGINT_MAX:
        return or_(m.id == int(value), m.report_id == value)
    return m.report_id == value


def _getlist(args: Mapping[str, Any], key: str) -> list[str]:
    if hasattr(args, "getlist"):
        return [str(v) for v in args.getlist(key)]
    value = args.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _get(args: Mapping[str, Any], key: str) -> str | None:
    """The last non-empty value of `key`, stripped; None when absent or blank."""
    found = [v.strip() for v in _getlist(args, key) if v is not None and v.strip()]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidFilter(f"'{key}' was given more than once.", field=key)
    value = found[0]
    _check_length(key, value)
    return value


def _check_length(key: str, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidFilter(
            f"'{key}' is too long ({len(value)} characters, at most {MAX_VALUE_LENGTH}).",
            field=key,
        )
    if "\x00" in value:
        raise InvalidFilter(f"'{key}' contains a NUL character.", field=key)


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Moments from a query end before the last year Python can represent: what the pages compute
#: from them (a bare `until` date + 1 day, /stats rounding up to the hour, a chart axis stepping
#: by months) must not overflow.
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def datetime_local_value(text: str | None, *, end_of_day: bool) -> str:
    """A `since`/`until` argument as the value of an `<input type="datetime-local">` (UTC).

    The URL keeps accepting every format `from_args` reads (bare dates, offsets, `Z`); the picker
    shows the same moment, so submitting the form unchanged filters the same way (a bare `until`
    date becomes the next midnight, the exclusive end it stands for). "" when unusable.
    """
    try:
        moment = _parse_moment("value", text, end_of_day=end_of_day)
    except InvalidFilter:
        return ""
    if moment is None:
        return ""
    # Not strftime("%Y"): it drops the leading zeros of years before 1000.
    return moment.replace(tzinfo=None).isoformat(timespec="seconds" if moment.second else "minutes")


def _parse_moment(key: str, text: str | None, *, end_of_day: bool) -> datetime | None:
    """ISO date or date-time → aware UTC datetime. A bare `until` date covers that whole day."""
    if text is None:
        return None
    try:
        if _DATE_RE.match(text):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            if moment < LATEST:
                return moment + timedelta(days=1) if end_of_day else moment
            raise OverflowError
        value = text.replace(" ", "T", 1)
        if value.endswith(("z", "Z")):
            value = value[:-1] + "+00:00"
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        if moment < LATEST:
            return moment
        raise OverflowError
    except OverflowError:
        raise InvalidFilter(
            f"'{key}' is out of range ({text}): dates must lie between 0001-01-01 and "
            f"{LATEST - timedelta(days=1):%Y-%m-%d} (UTC).",
            field=key,
        ) from None
    except ValueError:
        raise InvalidFilter(
            f"'{key}' must be an ISO date or date-time (e.g. 2026-03-31 or "
            f"2026-03-31T10:15:00Z), got {text!r}.",
            field=key,
        ) from None
