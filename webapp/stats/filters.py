"""Filters of /stats, /errors and their APIs: type, instrument, time range, acknowledged.

Parsed with the message list's own parser (webapp.messages.filters.MessageFilter: same argument
names, same 400s), so the links from here to the message list and to the bulk actions carry the
same filter. Only what the rollups can answer is accepted; the time range is applied at hour
precision (the rollup bucket): `since` is rounded down and `until` up to the hour.

`range` (`24h`, `7d`, `30d`, `90d`, `365d`, `all`) picks a window ending now when neither `since`
nor `until` is given; the default is DEFAULT_RANGE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import request

from models.identifiers import PROMOTED_IDENTIFIERS

from ..errors import InvalidFilter, parse_keeping_input
from ..messages.filters import MessageFilter, datetime_local_value

if TYPE_CHECKING:
    from ..auth.scope import Scope

RANGES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
    "all": None,
}
DEFAULT_RANGE = "30d"
#: Identifiers the rollups carry as a dimension besides the message type (a promoted identifier
#: of models/identifiers.py and a column of message_stats): the only identifier filter here.
ROLLUP_IDENTIFIERS = ("instrument",)
#: Arguments of the message filter that the rollups have no dimension for.
UNSUPPORTED = (
    "status",
    *(name for name in PROMOTED_IDENTIFIERS if name not in ROLLUP_IDENTIFIERS),
    "hash",
    "id",
    "routing_key",
    "payload_format",
    "q",
)
#: Before any real data (an "all" range still needs a lower bound for the SQL).
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _iso_utc(moment: datetime) -> str:
    # Not strftime("%Y"): it drops the leading zeros of years before 1000, which the parser
    # would then refuse.
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


@dataclass(frozen=True)
class StatsFilter:
    types: tuple[str, ...] = ()
    instrument: str | None = None
    #: Hour-aligned [since, until) in UTC.
    since: datetime = EPOCH
    until: datetime = EPOCH
    range: str | None = DEFAULT_RANGE
    #: Errors page: count acknowledged errors too.
    include_acknowledged: bool = False
    fingerprint: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any], now: datetime | None = None) -> StatsFilter:
        """Parse query arguments; InvalidFilter (400) with a reason when one is unusable."""
        now = now or datetime.now(UTC)
        for name in UNSUPPORTED:
            if (args.get(name) or "").strip() and not (
                name == "status" and args.get(name) == "all"
            ):
                raise InvalidFilter(
                    f"'{name}' cannot be used here: statistics and error groups are kept per "
                    "message type, instrument and hour only.",
                    field=name,
                )
        acknowledged = (args.get("acknowledged") or "hidden").strip()
        if acknowledged == "only":
            raise InvalidFilter(
                "acknowledged=only is not available here; use hidden or shown.",
                field="acknowledged",
            )
        flt = MessageFilter.from_args(args)
        range_ = (args.get("range") or "").strip() or None
        if range_ is not None and range_ not in RANGES:
            raise InvalidFilter(
                f"Unknown range {range_!r}: use one of {', '.join(RANGES)}.", field="range"
            )
        until = ceil_hour(flt.until or now)
        if flt.since is not None or flt.until is not None:
            since = floor_hour(flt.since) if flt.since else EPOCH
            range_ = None
        else:
            range_ = range_ or DEFAULT_RANGE
            span = RANGES[range_]
            since = floor_hour(now - span) if span else EPOCH
        if since >= until:
            raise InvalidFilter("'since' must be before 'until'.", field="since")
        return cls(
            types=flt.types,
            instrument=flt.instrument,
            since=since,
            until=until,
            range=range_,
            include_acknowledged=flt.acknowledged == "shown",
            fingerprint=flt.fingerprint,
        )

    def message_args(self) -> dict[str, Any]:
        """The same filter as message-list arguments (list links and bulk actions)."""
        out: dict[str, Any] = {}
        if self.types:
            out["type"] = list(self.types)
        if self.instrument:
            out["instrument"] = self.instrument
        if self.since > EPOCH:
            out["since"] = _iso_utc(self.since)
        out["until"] = _iso_utc(self.until)
        if self.include_acknowledged:
            out["acknowledged"] = "shown"
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "types": list(self.types),
            "instrument": self.instrument,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "range": self.range,
            "include_acknowledged": self.include_acknowledged,
        }


def parse_filter(scope: Scope, args: Any = None) -> StatsFilter:
    """The request's filter; metadata-only users may not filter by instrument (an identifier)
    or error fingerprint (read from the error text): Scope.check_filters."""
    flt = StatsFilter.from_args(request.args if args is None else args)
    scope.check_filters(flt)
    return flt


def page_filter(scope: Scope) -> tuple[StatsFilter, dict[str, Any]]:
    """For the HTML pages: the filter without the arguments it refused, and what the shared
    filter form shows (`refused` next to their fields, the time range in the pickers, the
    identifier fields the scope may use: `filterable`)."""
    flt, refused = parse_keeping_input(lambda args: parse_filter(scope, args), request.args)
    form = {
        "refused": refused,
        "filterable": [name for name in ROLLUP_IDENTIFIERS if scope.can_filter(name)],
        "raw_args": request.args,
        "since_input": ""
        if "since" in refused
        else datetime_local_value(request.args.get("since"), end_of_day=False),
        "until_input": ""
        if "until" in refused
        else datetime_local_value(request.args.get("until"), end_of_day=True),
    }
    return flt, form
