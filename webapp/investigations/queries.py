"""Reads of the investigations area (never commit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from models.investigations import STATUSES, InvestigationCheck

from ..errors import InvalidFilter
from ..extensions import db

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_TEXT = 200


@dataclass(frozen=True)
class CheckFilter:
    """Filters of the /investigations page, parsed and validated from the query string."""

    status: str | None = None
    #: Substring of the investigation name or visit id.
    q: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> CheckFilter:
        status = (args.get("status") or "").strip() or None
        if status is not None and status not in STATUSES:
            raise InvalidFilter(
                f"unknown status {status!r}: expected one of {', '.join(STATUSES)}",
                field="status",
            )
        q = (args.get("q") or "").strip() or None
        if q is not None and (len(q) > MAX_TEXT or "\x00" in q):
            raise InvalidFilter(f"search text: at most {MAX_TEXT} characters", field="q")
        return cls(status=status, q=q)

    def url_args(self) -> dict[str, str]:
        return {k: v for k, v in (("status", self.status), ("q", self.q)) if v}


@dataclass(frozen=True)
class Cursor:
    """Keyset position: rows strictly after (end_date, id) in (end_date DESC, id DESC) order."""

    end_date: datetime
    id: int

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Cursor | None:
        raw = args.get("after")
        if not raw:
            return None
        try:
            stamp, _, ident = raw.rpartition("_")
            end_date = datetime.fromisoformat(stamp)
            if end_date.tzinfo is None:
                raise ValueError("naive")
            return cls(end_date, int(ident))
        except ValueError:
            raise InvalidFilter("bad page cursor", field="after") from None

    def token(self) -> str:
        return f"{self.end_date.isoformat()}_{self.id}"


def parse_limit(args: Mapping[str, str]) -> int:
    raw = args.get("limit")
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidFilter("limit: expected a number", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidFilter(f"limit: between 1 and {MAX_LIMIT}", field="limit")
    return limit


def _filtered(filters: CheckFilter):
    stmt = select(InvestigationCheck)
    if filters.status:
        stmt = stmt.where(InvestigationCheck.status == filters.status)
    if filters.q:
        pattern = (
            "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            or_(
                InvestigationCheck.name.ilike(pattern, escape="\\"),
                InvestigationCheck.visit_id.ilike(pattern, escape="\\"),
            )
        )
    return stmt


@dataclass
class Page:
    rows: list[InvestigationCheck]
    next_cursor: Cursor | None


def list_checks(filters: CheckFilter, cursor: Cursor | None, limit: int) -> Page:
    """One page of checks, most recent end date first (rows without an end date last)."""
    # The check always sets end_date (ICAT's endDate); the keyset relies on it.
    stmt = _filtered(filters)
    if cursor is not None:
        stmt = stmt.where(
            or_(
                InvestigationCheck.end_date < cursor.end_date,
                and_(
                    InvestigationCheck.end_date == cursor.end_date,
                    InvestigationCheck.id < cursor.id,
                ),
            )
        )
    stmt = stmt.order_by(
        InvestigationCheck.end_date.desc().nulls_last(), InvestigationCheck.id.desc()
    ).limit(limit + 1)
    rows = list(db.session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        if last.end_date is not None:
            next_cursor = Cursor(last.end_date, last.id)
    return Page(rows, next_cursor)


def status_counts() -> dict[str, int]:
    """Number of checks per status (every status present, zero when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in db.session.execute(
        select(InvestigationCheck.status, func.count()).group_by(InvestigationCheck.status)
    ):
        counts[status] = n
    return counts
